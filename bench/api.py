"""HTTP API throughput and latency beside a bare ASGI app, under our server and under
uvicorn + httptools + uvloop.

Each server is pinned to core 0, wrk to core 1. For each load (GET settings,
POST valid settings that change every time and so commit durably, POST an
invalid body) it runs wrk against the service, the bare app under our server and
the bare app under uvicorn, alternated, ROUNDS times, and prints medians and the
ratios of the service to each bare app, and the CPU time each server spent per request
(from /proc: on a machine shared with other work, throughput swings with the others' load
while a request's CPU time barely moves). All get the same requests (method,
headers, bodies); the bare app drains the body and answers a fixed JSON of the
size of our GET answer. uvicorn runs from its own venv (--uvicorn PYTHON), never a
dependency of the project: `make bench` makes it.

Run: make bench   (needs Debian's wrk and taskset; two cores)
"""

import argparse
import asyncio
import gc
import hashlib
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SERVER_CORE, LOAD_CORE = "0", "1"

VALID = {
    "enable": True,
    "proxy": "sip:pbx.example.com",
    "realm": "example.com",
    "user": "101",
    "password": "secret1",
    "transport": "udp",
    "user_id": "",
    "is_enable_ring_code": False,
    "timeout": 120,
    "registration_interval": 60,
    "stun": {"ip": "", "port": 3478},
}
INVALID = {**VALID, "timeout": 121}

# wrk's Lua: alternate two bodies so every valid POST is a change (a durable commit),
# and print the figures as one JSON line.
LUA = """
local bodies = {%s}
local n = 0
request = function()
  n = n + 1
  return wrk.format(%s, nil, nil, bodies[(n %% #bodies) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format('JSON {"requests": %%d, "seconds": %%f, "p50": %%f, "p99": %%f, '
    .. '"errors": %%d, "non2xx": %%d}\\n', summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, summary.errors.status))
end
"""


@dataclass(frozen=True)
class Load:
    name: str
    method: str
    bodies: tuple[str, ...]
    expect_2xx: bool


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(command: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CORE, *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit(f"server on port {port} did not start")


def login(port: int) -> str:
    md5 = hashlib.md5(b"123456").hexdigest()  # noqa: S324 (the vendor's login)
    url = f"http://127.0.0.1:{port}/api/v1/login?username=admin&password={md5}"
    with urllib.request.urlopen(url, timeout=10) as reply:
        token: str = json.loads(reply.read())["token"]
    return token


def cpu_seconds(pid: int) -> float:
    """User and system time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(
    url: str, load: Load, token: str, args: argparse.Namespace, work: Path, pid: int
) -> dict[str, float]:
    script = work / f"{load.name}.lua"
    bodies = ", ".join(json.dumps(body) for body in load.bodies) or '""'
    script.write_text(LUA % (bodies, json.dumps(load.method)))
    command = [
        "taskset",
        "-c",
        LOAD_CORE,
        "wrk",
        "-t1",
        f"-c{args.connections}",
        f"-d{args.seconds}s",
        "-s",
        str(script),
        "-H",
        f"Authorization: Bearer {token}",
        url,
    ]
    spent = cpu_seconds(pid)
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    spent = cpu_seconds(pid) - spent
    line = next(line for line in output.splitlines() if line.startswith("JSON "))
    figures: dict[str, float] = json.loads(line[5:])
    figures["cpu_us"] = spent / max(1, figures["requests"]) * 1e6
    if load.expect_2xx and figures["non2xx"]:
        raise SystemExit(f"{load.name}: {figures['non2xx']} answers were not 2xx")
    if figures["errors"]:
        raise SystemExit(f"{load.name}: {figures['errors']} socket errors")
    figures["rps"] = figures["requests"] / figures["seconds"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    # Short runs, many rounds: on a machine shared with other work, the load changes from
    # one second to the next, and runs close in time see the same load.
    parser.add_argument("--seconds", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--uvicorn", help="a python with uvicorn, httptools and uvloop (the bench's own venv)"
    )
    parser.add_argument(
        "--loads",
        help="only these loads, comma-separated (get-settings, post-valid, post-invalid)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="no sockets, no wrk: CPU us per request of the connection and the app alone",
    )
    args = parser.parse_args()
    if args.in_process:
        in_process()
        return
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk: apt-get install wrk")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs two cores: one for the servers, one for wrk")
    loads = (
        Load("get-settings", "GET", (), True),
        Load(
            "post-valid",
            "POST",
            tuple(json.dumps({**VALID, "timeout": t}) for t in (120, 300)),
            True,
        ),
        Load("post-invalid", "POST", (json.dumps(INVALID),), False),
    )
    if args.loads:
        wanted = set(args.loads.split(","))
        loads = tuple(load for load in loads if load.name in wanted)
    with tempfile.TemporaryDirectory(prefix="intercom-bench-") as tmp:
        work = Path(tmp)
        ours_port, bare_port, uvicorn_port = free_port(), free_port(), free_port()
        ours = start(
            [
                sys.executable,
                "-m",
                "intercom_sip",
                "serve",
                "--port",
                str(ours_port),
                "--data-dir",
                str(work / "data"),
                *("--sip-host", "127.0.0.1", "--sip-port", "0"),  # never 5060, maybe taken
            ],
            ours_port,
        )
        bare = start(
            [sys.executable, str(HERE / "bare_app.py"), "--port", str(bare_port)], bare_port
        )
        servers = {"ours": (ours_port, ours.pid), "bare": (bare_port, bare.pid)}
        processes = [ours, bare]
        if args.uvicorn:
            processes.append(uvicorn(args.uvicorn, uvicorn_port))
            servers["uvicorn"] = (uvicorn_port, processes[-1].pid)
        commits: list[dict[str, float]] = []  # one per round of valid POSTs, beside them
        try:
            token = login(ours_port)
            results = run_all(loads, token, servers, args, work, commits)
        finally:
            for process in processes:
                process.terminate()
                process.wait(20)
    report(results, args)
    if commits:
        report_commits(results, commits)


def report_commits(
    results: dict[str, dict[str, list[dict[str, float]]]], commits: list[dict[str, float]]
) -> None:
    median = {k: statistics.median(c[k] for c in commits) for k in ("rps", "p50", "p99")}
    valid = statistics.median(r["rps"] for r in results["post-valid"]["ours"])
    rounds = [
        post["rps"] / commit["rps"]
        for post, commit in zip(results["post-valid"]["ours"], commits, strict=True)
    ]
    print(
        f"durable commits alone (store, no HTTP, one writer), each round right after the"
        f" valid POSTs: {median['rps']:.0f}/s, p50 {median['p50']:.2f} ms,"
        f" p99 {median['p99']:.2f} ms; valid POST reaches {valid / median['rps']:.2f} of that"
        f" (rounds {', '.join(f'{ratio:.2f}' for ratio in rounds)};"
        f" median {statistics.median(rounds):.2f})"
    )


def in_process(count: int = 5000, rounds: int = 12) -> None:
    """Each request's raw bytes fed to one connection of our server (a transport that
    keeps nothing), on uvloop: the thread's CPU time per request, the least of `rounds`
    runs of `count`. Beside wrk's figures this one moves little with the machine's load;
    it also counts the writes and the tasks a request took (both should be 1 and 0)."""
    import uvloop

    from bare_app import app as bare
    from intercom_sip.admin.logins import Admin, ensure_credential
    from intercom_sip.api import openapi
    from intercom_sip.api.app import Api
    from intercom_sip.api.hosts import HostCheck
    from intercom_sip.api.routes import Routes
    from intercom_sip.device import Device, NoAgent
    from intercom_sip.store import Store
    from intercom_sip.worker import Worker

    async def main(data: Path) -> None:
        store = Store.open(data)
        ensure_credential(store)
        device = Device(store, NoAgent())
        hasher = Worker("hash")
        admin = Admin(store, hasher)
        admin.watched = True  # as the service, which learns of changes by inotify
        device.start()

        async def nothing() -> None:
            pass

        api = Api(
            Routes(device, admin, openapi.build()),
            admin.authorized,
            HostCheck("127.0.0.1", ()),
            nothing,
            nothing,
        )
        md5 = hashlib.md5(b"123456").hexdigest()  # noqa: S324 (the vendor's login)
        query = f"username=admin&password={md5}"
        login = f"GET /api/v1/login?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        answer = await _Fed(api).answer(login.encode())
        token = json.loads(answer.partition(b"\r\n\r\n")[2])["token"]
        head = (
            "{} /api/v1/device/sip/settings HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
            f"Authorization: Bearer {token}\r\n"
        )
        get = (head.format("GET") + "\r\n").encode()
        body = json.dumps(INVALID).encode()
        post = (head.format("POST") + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        cases = (("api GET", api, get), ("api POST rejected", api, post))
        cases += (("bare GET", bare, get), ("bare POST", bare, post))
        hasher.close()
        gc.collect()
        gc.freeze()  # as the service does once started
        for name, app, raw in cases:
            fed = _Fed(app)
            best, writes, tasks = fed.run(raw, count, rounds)
            print(f"{name:<18} {best:6.2f} us  ({writes:.2f} writes, {tasks} tasks a request)")

    with tempfile.TemporaryDirectory(prefix="intercom-bench-") as tmp:
        uvloop.run(main(Path(tmp) / "data"))


class _Fed:
    """One connection of our server, its transport and listener played by this object."""

    def __init__(self, app: Any) -> None:
        from intercom_sip.api.connection import Connection, Limits
        from intercom_sip.loglimit import LogLimit

        self.limits, self.throttled = Limits(), LogLimit(logging.getLogger("bench"))
        self._buffer = memoryview(bytearray(self.limits.read_size))
        self.writes, self.tasks, self.last = 0, 0, b""
        self._wrote: asyncio.Event | None = None
        self.conn = Connection(app, self)
        self.conn.connection_made(self)  # type: ignore[arg-type]

    async def answer(self, raw: bytes) -> bytes:
        """One request that may wait (a login): its answer, once written."""
        self._wrote = asyncio.Event()
        self._feed(raw)
        await asyncio.wait_for(self._wrote.wait(), 10)
        return self.last

    def run(self, raw: bytes, count: int, rounds: int) -> tuple[float, float, int]:
        for _ in range(200):  # warm
            self._feed(raw)
        self.writes, best = 0, float("inf")
        for _ in range(rounds):
            started = time.thread_time()
            for _ in range(count):
                self._feed(raw)
            best = min(best, (time.thread_time() - started) / count * 1e6)
        return best, self.writes / (count * rounds), self.tasks

    def _feed(self, raw: bytes) -> None:
        self._buffer[: len(raw)] = raw
        self.conn.buffer_updated(len(raw))

    # --- the listener (Owner) and the transport, as the connection calls them ---

    def spawn(self, work: Any) -> None:
        self.tasks += 1
        asyncio.get_running_loop().create_task(work)

    def read_buffer(self) -> memoryview:
        return self._buffer

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.last = data
        if self._wrote is not None:
            self._wrote.set()

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 40000)

    def idle(self, conn: Any) -> None: ...
    def busy(self, conn: Any) -> None: ...
    def gone(self, conn: Any) -> None: ...
    def set_write_buffer_limits(self, high: int) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def write_eof(self) -> None: ...


def uvicorn(python: str, port: int) -> subprocess.Popen[bytes]:
    """The bare app under uvicorn + httptools + uvloop, one worker, no access log."""
    os.environ["PYTHONPATH"] = str(HERE.parent / "src")  # for the contract's GET body
    command = [python, "-m", "uvicorn", "--app-dir", str(HERE), "bare_app:app"]
    options = ["--port", str(port), "--loop", "uvloop", "--http", "httptools"]
    return start([*command, *options, "--no-access-log", "--log-level", "warning"], port)


def commit_rate(args: argparse.Namespace) -> dict[str, float]:
    command = [
        "taskset",
        "-c",
        SERVER_CORE,
        sys.executable,
        str(HERE / "commit_rate.py"),
        "--seconds",
        str(args.seconds),
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    figures: dict[str, float] = json.loads(output)
    return figures


def run_all(
    loads: tuple[Load, ...],
    token: str,
    servers: dict[str, tuple[int, int]],
    args: argparse.Namespace,
    work: Path,
    commits: list[dict[str, float]],
) -> dict[str, dict[str, list[dict[str, float]]]]:
    path = "/api/v1/device/sip/settings"
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    for load in loads:
        runs = results.setdefault(load.name, {name: [] for name in servers})
        for _ in range(args.rounds):  # alternated, so drift hits all alike
            # the bare apps get the very same requests: same method, headers and bodies
            for name, (port, pid) in servers.items():
                url = f"http://127.0.0.1:{port}{path}"
                runs[name].append(wrk(url, load, token, args, work, pid))
            if load.name == "post-valid":  # the store alone, under the same load as they
                commits.append(commit_rate(args))
    return results


def report(
    results: dict[str, dict[str, list[dict[str, float]]]], args: argparse.Namespace
) -> None:
    print(
        f"wrk -t1 -c{args.connections} -d{args.seconds}s, {args.rounds} rounds alternated,"
        f" medians; servers on core {SERVER_CORE}, wrk on core {LOAD_CORE}"
    )
    print("ours: the API under our server; bare: the bare app under our server;")
    print("uvicorn: the bare app under uvicorn + httptools + uvloop; x: ours / that")
    names = list(next(iter(results.values())))
    header = f"{'load':<14}" + "".join(f"{name + ' req/s':>15}" for name in names)
    header += "".join(f"{'x ' + name:>11}" for name in names[1:])
    header += "".join(f"{name + ' p50/p99 ms':>22}" for name in names)
    print(header)
    for load, runs in results.items():
        med = {
            name: {
                k: statistics.median(r[k] for r in runs[name])
                for k in ("rps", "p50", "p99", "cpu_us")
            }
            for name in names
        }
        line = f"{load:<14}" + "".join(f"{med[name]['rps']:>15.0f}" for name in names)
        line += "".join(f"{med['ours']['rps'] / med[name]['rps']:>11.2f}" for name in names[1:])
        line += "".join(f"{med[name]['p50']:>13.2f}/{med[name]['p99']:<8.2f}" for name in names)
        print(line)
        rounds = [
            f"{ours['rps'] / other['rps']:.2f}"
            for ours, other in zip(runs["ours"], runs[names[-1]], strict=True)
        ]
        within = statistics.median(float(ratio) for ratio in rounds)
        print(f"{'':<14}rounds ours/{names[-1]}: {', '.join(rounds)} (median {within:.2f})")
        cpu = ", ".join(f"{name} {med[name]['cpu_us']:.1f}" for name in names)
        cheaper = med[names[-1]]["cpu_us"] / med["ours"]["cpu_us"]
        print(f"{'':<14}CPU us/request: {cpu}; {names[-1]}/ours {cheaper:.2f}")


if __name__ == "__main__":
    main()
