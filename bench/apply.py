"""From the POST that changes the SIP password to the registrar's 200, seen on the wire.

For each transport (udp, tcp, tls) the service is registered with a real Kamailio (realm
kamailio.test, user 101), then the password is changed CHANGES times. Each change: the new
password is set at the registrar first (kamcmd, over its control socket), the wall clock
is read just before the POST is sent, and the change is over when the capture shows the
registrar's 200 answering a REGISTER of user 101 sent after that instant; the figure is
that 200's capture timestamp minus the instant before the POST. It includes the HTTP
request, the durable commit (SQLite, synchronous=FULL), the agent's reaction and every
round trip it makes; nothing in the service is changed or shortened.

Beside it, in the same run and interleaved one for one with the changes, a minimal client
(tests/peers/sipclient.py, on a connection opened once, as the agent's is) does one bare
challenged REGISTER exchange for user 102 with the same Kamailio over the same transport:
REGISTER -> 401 -> REGISTER with Authorization -> 200, two round trips. Its figure is
measured the same way: the 200's capture timestamp minus the wall clock read just before
the first REGISTER is sent. Issue 13's aim: a change takes at most 1.5x the bare exchange.

The wire: a live `tshark` on lo (filter: the registrar's ports and the API's port) decodes
SIP over UDP, TCP and TLS, and the API's HTTP; TLS is decrypted with the key log both TLS
clients write (SSLKEYLOGFILE, which Python's ssl.create_default_context honours, so the
service runs unchanged). Timestamps are the kernel's capture times, on the same clock
(CLOCK_REALTIME) as time.time(). tshark hands its lines over some 0.7 s late (dumpcap's
buffering), so the run does not wait on them: after each POST it pauses PAUSE (150 ms, some
40 times the change), then does the bare exchange, and the capture is read once per
transport, after a probe OPTIONS has come through it. A change's 200 must come before the
next change (else it counts as missed); one that comes after the pause counts as late. The
wire also shows where a change spends its time: the POST, its answer, the first REGISTER.

The floor under a change, in the same run: after each bare exchange the script makes one
durable commit of the settings (the store's own `save_settings`, SQLite with
synchronous=FULL) on a store of its own in the same directory, and times it. The aim of
issue 13: from the POST seen on the wire to the first REGISTER, at most that commit's p50
plus 0.3 ms (what the service adds to its commit: reading the request, the hops to the
writer's thread and back, and making the REGISTER).

With --trace-commits the service runs under strace, stopped at its fsyncs alone (seccomp
filters the rest out): the end of each `fdatasync`/`fsync` is the commit's completion, on
the same clock as the capture, and the figure is from there to the first REGISTER on the
wire (each stop adds some tens of microseconds, to this figure too).

Nothing is pinned: the service, Kamailio, tshark and this script share the machine's
cores, as they would on a small device. The first WARMUP changes and exchanges of each
transport are not counted. The registration interval is 900 s, so no refresh falls into
the run, and every change of one transport takes place within Kamailio's nonce lifetime
(300 s).

Needs: root (to capture), tshark and dumpcap (`apt-get install tshark`), Kamailio with
its TLS module (`scripts/install-peers`), the service installed in .venv (`make install`).
Run (about 40 s):

    sudo .venv/bin/python bench/apply.py    # --changes 50 --warmup 3 --pause 0.15
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from wire import Capture, Sip

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the peers of the tests: Kamailio and the minimal client

from tests.peers import sipclient  # noqa: E402
from tests.peers.kamailio import Kamailio  # noqa: E402
from tests.peers.ports import free_port, free_tcp_port  # noqa: E402

from intercom_sip.contract.fields import FACTORY  # noqa: E402
from intercom_sip.store import Store  # noqa: E402

REALM = "kamailio.test"
AGENT_USER, BARE_USER = "101", "102"
TRANSPORTS = ("udp", "tcp", "tls")
INTERVAL = 900  # the longest the API allows: no refresh during the run
SETTINGS = "/api/v1/device/sip/settings"


@dataclass
class Change:
    """One password change, from the instant before the POST (times in ms from it)."""

    total: float  # the 200 on the wire
    post: float  # the POST's answer, as the HTTP client read it
    post_seen: float  # the POST on the wire (its last segment)
    answer_seen: float  # the POST's 200 on the wire (its last segment)
    first_register: float  # the first REGISTER of user 101 on the wire
    from_commit: float | None  # from the last fsync's end before it (--trace-commits)
    registers: int  # REGISTERs of user 101 on the wire up to the 200
    challenges: int  # 401s among their answers


@dataclass
class Bare:
    """One bare challenged exchange, from the instant before the first REGISTER (ms)."""

    total: float  # the 200 on the wire
    client: float  # the 200 as the client read it


@dataclass
class Results:
    changes: list[Change] = field(default_factory=list)
    bare: list[Bare] = field(default_factory=list)
    missed_changes: int = 0
    missed_bare: int = 0
    late: int = 0  # changes whose 200 came after the pause, when the bare exchange began
    commits: list[float] = field(default_factory=list)  # ms, the floor, interleaved


class Service:
    """intercom-sip serve, as a user runs it, with SIP on a fixed loopback port."""

    def __init__(
        self, data_dir: Path, ca_file: Path, keylog: Path, fsyncs: Path | None = None
    ) -> None:
        # strace: only the fsyncs stop the service (-o: its stdout stays the service's).
        tracer = ["strace", "-f", "-qq", "--seccomp-bpf", "-ttt", "-T", "-e"]
        tracer += ["trace=fdatasync,fsync", "-e", "signal=none", "-o", str(fsyncs), "--"]
        self.command = [
            *(tracer if fsyncs is not None else []),
            sys.executable,
            "-m",
            "intercom_sip",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            "--sip-host",
            "127.0.0.1",
            "--sip-port",
            str(free_port(both=True)),
            "--tls-ca-file",
            str(ca_file),
        ]
        self.env = {**os.environ, "SSLKEYLOGFILE": str(keylog)}
        self.lines: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self.http: http.client.HTTPConnection | None = None
        self.port = 0
        self.token = ""

    def start(self, timeout: float = 20.0) -> None:
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
        )
        ready = threading.Event()
        address: list[tuple[str, int]] = []

        def read() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                self.lines.append(line)
                if "intercom-sip ready on http://" in line:
                    host, _, port = line.split("http://", 1)[1].strip().rpartition(":")
                    address.append((host, int(port)))
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout):
            self.stop()
            raise SystemExit("the service did not start:\n" + "".join(self.lines))
        self.port = address[0][1]
        self.http = http.client.HTTPConnection(*address[0], timeout=10)
        md5 = hashlib.md5(b"123456").hexdigest()  # noqa: S324 (the vendor's login)
        status, answer = self.call("GET", f"/api/v1/login?username=admin&password={md5}")
        if status != 200:
            raise SystemExit(f"login failed: {status} {answer}")
        self.token = answer["token"]

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request on the kept-alive connection."""
        assert self.http is not None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        self.http.request(method, path, body=data, headers=headers)
        reply = self.http.getresponse()
        return reply.status, json.loads(reply.read())

    def stop(self) -> None:
        if self.http is not None:
            self.http.close()
        if self.process is not None and self.process.poll() is None:
            for child in _children(self.process.pid):  # under strace: the service itself
                os.kill(child, signal.SIGTERM)
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(word) for word in text.split()]


def fsync_ends(path: Path) -> list[float]:
    """The instants (Unix seconds) each traced fsync returned: `pid start name(fd) = 0 <s>`."""
    ends = []
    for line in path.read_text().splitlines():
        words = line.split()
        if len(words) >= 3 and words[2].startswith(("fdatasync(", "fsync(")):
            ends.append(float(words[1]) + float(words[-1].strip("<>")))
    return sorted(ends)


def settings(kamailio: Kamailio, transport: str, password: str) -> dict[str, Any]:
    port = kamailio.tls_port if transport == "tls" else kamailio.sip_port
    return {
        "enable": True,
        "proxy": f"127.0.0.1:{port}",
        "realm": REALM,
        "user": AGENT_USER,
        "password": password,
        "transport": transport,
        "user_id": "",
        "timeout": 120,
        "registration_interval": INTERVAL,
        "stun": {"ip": "", "port": 0},
    }


def first_ok(messages: list[Sip], user: str, start: float, end: float) -> Sip | None:
    """The first 200 captured in [start, end) answering a REGISTER of `user` sent in it."""
    sent: set[tuple[str, int]] = set()
    for message in messages:
        if message.from_user != user or not start <= message.time < end:
            continue
        if message.method == "REGISTER":
            sent.add((message.call_id, message.cseq))
        elif (
            message.status == 200
            and message.cseq_method == "REGISTER"
            and (message.call_id, message.cseq) in sent
        ):
            return message
    return None


@dataclass
class Step:
    """What one iteration did, with the wall clock read just before each action."""

    change_at: float
    change_post: float  # ms
    bare_at: float
    bare_client: float  # ms
    commit: float  # ms, one durable commit of a store of the script's own


def change_password(
    service: Service, kamailio: Kamailio, transport: str, password: str
) -> tuple[float, float]:
    """Set the password at the registrar, then POST it: (instant before the POST, ms)."""
    kamailio.set_password(AGENT_USER, password)  # the registrar first
    body = settings(kamailio, transport, password)
    t0 = time.time()
    status, answer = service.call("POST", SETTINGS, body)
    answered = time.time()
    if status != 200:
        raise SystemExit(f"POST answered {status}: {answer}")
    return t0, (answered - t0) * 1e3


def bare_exchange(conn: sipclient.Connection, password: str) -> tuple[float, float]:
    """One challenged REGISTER: (instant before the first REGISTER, ms to the 200 read)."""
    t0 = time.time()
    reply = sipclient.register(conn, BARE_USER, password, expires=INTERVAL)
    read = time.time()
    if reply.status != 200:
        raise SystemExit(f"bare exchange answered {reply.status}")
    return t0, (read - t0) * 1e3


class Floor:
    """Durable commits of the settings on a store of the script's own, one at a time."""

    def __init__(self, data_dir: Path) -> None:
        self.store = Store.open(data_dir)
        self.settings = (replace(FACTORY, timeout=120), replace(FACTORY, timeout=300))
        self.made = 0

    def commit(self) -> float:
        """One commit, as the service's writer makes it: ms."""
        new, old = self.settings[self.made % 2], self.settings[(self.made + 1) % 2]
        started = time.perf_counter()
        self.store.save_settings(new, old, time.time(), "bench")
        self.made += 1
        return (time.perf_counter() - started) * 1e3


def analyse(
    steps: list[Step], messages: list[Sip], end: float, results: Results, fsyncs: list[float]
) -> None:
    """Find each change's and each exchange's 200 in the capture."""
    results.commits = [step.commit for step in steps]
    for i, step in enumerate(steps):
        following = steps[i + 1] if i + 1 < len(steps) else None
        # A change may take until the next change; an exchange until the next exchange.
        change_end = following.change_at if following else end
        ok = first_ok(messages, AGENT_USER, step.change_at, change_end)
        if ok is None:
            results.missed_changes += 1
        else:
            seen = [
                m
                for m in messages
                if m.from_user == AGENT_USER and step.change_at <= m.time <= ok.time
            ]
            registers = [m for m in seen if m.method == "REGISTER"]
            post = next(m for m in messages if m.http == "POST" and m.time >= step.change_at)
            synced = [t for t in fsyncs if post.time <= t <= registers[0].time]
            answer = next(m for m in messages if m.http == "200" and m.time >= post.time)
            results.changes.append(
                Change(
                    total=(ok.time - step.change_at) * 1e3,
                    post=step.change_post,
                    post_seen=(post.time - step.change_at) * 1e3,
                    answer_seen=(answer.time - step.change_at) * 1e3,
                    first_register=(registers[0].time - step.change_at) * 1e3,
                    from_commit=(registers[0].time - synced[-1]) * 1e3 if synced else None,
                    registers=len(registers),
                    challenges=sum(1 for m in seen if m.status == 401),
                )
            )
            results.late += ok.time >= step.bare_at
        ok = first_ok(messages, BARE_USER, step.bare_at, following.bare_at if following else end)
        if ok is None:
            results.missed_bare += 1
        else:
            results.bare.append(
                Bare(total=(ok.time - step.bare_at) * 1e3, client=step.bare_client)
            )


def connect(kamailio: Kamailio, transport: str, keylog: Path) -> sipclient.Connection:
    context = ssl.create_default_context(cafile=str(kamailio.ca_cert))
    context.keylog_filename = str(keylog)
    port = kamailio.tls_port if transport == "tls" else kamailio.sip_port
    return sipclient.Connection(transport, ("127.0.0.1", port), context=context)


def wait_registered(service: Service, transport: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, answer = service.call("GET", "/api/v1/sip/status")
        if (
            status == 200
            and answer.get("state") == "registered"
            and answer.get("transport") == transport
        ):
            return
        time.sleep(0.05)
    raise SystemExit(f"not registered over {transport}: {answer}")


def run_transport(
    transport: str,
    service: Service,
    kamailio: Kamailio,
    capture: Capture,
    keylog: Path,
    floor: Floor,
    fsyncs: Path | None,
    args: argparse.Namespace,
) -> Results:
    # The registrar's current password: the old binding's un-REGISTER must still pass.
    first = kamailio.users[AGENT_USER]
    status, answer = service.call("POST", SETTINGS, settings(kamailio, transport, first))
    if status != 200:
        raise SystemExit(f"POST answered {status}: {answer}")
    wait_registered(service, transport)
    time.sleep(0.2)  # let the old binding's un-REGISTER and the new one settle
    steps: list[Step] = []
    bare_password = kamailio.users[BARE_USER]
    with connect(kamailio, transport, keylog) as conn:
        for i in range(args.warmup + args.changes):
            change_at, post = change_password(service, kamailio, transport, f"{transport}-pw{i}")
            time.sleep(args.pause)  # the change is seen on the wire in this time, or is late
            bare_at, client = bare_exchange(conn, bare_password)
            commit = floor.commit()
            time.sleep(args.gap)
            steps.append(Step(change_at, post, bare_at, client, commit))
    end = time.time()
    sync(kamailio, capture)  # every packet before `end` has reached us
    results = Results()
    ends = fsync_ends(fsyncs) if fsyncs is not None else []
    analyse(steps[args.warmup :], list(capture.messages), end, results, ends)  # no warm-up
    return results


def p99(values: list[float]) -> float:
    """The 99th percentile, interpolated (at n=50 it lies between the two largest)."""
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def report(results: dict[str, Results], args: argparse.Namespace) -> None:
    cores = os.cpu_count()
    print(
        f"{args.changes} password changes, {args.changes} bare exchanges and {args.changes}"
        f" durable commits per transport, interleaved, after {args.warmup} uncounted of each;"
        " ms from the instant before the POST (or the bare client's first REGISTER) to the"
        " registrar's 200 as captured on lo."
        f" Nothing pinned: service, Kamailio, tshark and this script share {cores} cores."
    )
    print(
        f"{'transport':<10}{'change p50':>11}{'p99':>8}{'bare p50':>10}{'p99':>8}"
        f"{'ratio':>7} |{'POST':>7}{'answer':>8}{'1st REG':>9}{'REG->200':>10}"
        f"{'REG/chg':>9}{'401/chg':>9}{'late':>6}{'missed':>8} |{'POST->REG':>10}"
        f"{'commit':>8}{'over':>7}{'fsync->REG':>11}"
    )
    for transport, r in results.items():
        if not r.changes or not r.bare:
            print(f"{transport:<10} no figures (missed {r.missed_changes}/{r.missed_bare})")
            continue
        totals = [c.total for c in r.changes]
        bares = [b.total for b in r.bare]
        ratio = statistics.median(totals) / statistics.median(bares)
        med = {
            name: statistics.median(getattr(c, name) for c in r.changes)
            for name in ("post_seen", "answer_seen", "first_register")
        }
        last_leg = statistics.median(c.total - c.first_register for c in r.changes)
        to_register = statistics.median(c.first_register - c.post_seen for c in r.changes)
        commit = statistics.median(r.commits)
        traced = [c.from_commit for c in r.changes if c.from_commit is not None]
        from_commit = f"{statistics.median(traced):>9.2f}" if traced else f"{'-':>9}"
        print(
            f"{transport:<10}{statistics.median(totals):>11.2f}{p99(totals):>8.2f}"
            f"{statistics.median(bares):>10.2f}{p99(bares):>8.2f}{ratio:>7.2f} |"
            f"{med['post_seen']:>7.2f}{med['answer_seen']:>8.2f}{med['first_register']:>9.2f}"
            f"{last_leg:>10.2f}"
            f"{statistics.mean(c.registers for c in r.changes):>9.2f}"
            f"{statistics.mean(c.challenges for c in r.changes):>9.2f}"
            f"{r.late:>6}{r.missed_changes + r.missed_bare:>8} |{to_register:>10.2f}"
            f"{commit:>8.2f}{to_register - commit:>7.2f}  {from_commit}"
        )
    print(
        "ratio: median change / median bare exchange (aim: at most 1.5). After the bar, medians"
        " of each change, on the wire, in ms from the instant before the POST: POST: the"
        " request; answer: its 200; 1st REG: the agent's first REGISTER; REG->200: from that"
        " REGISTER to the registrar's 200; REG/chg, 401/chg: REGISTERs sent and 401s"
        " received per change (means). late: changes whose 200 came after the"
        f" {args.pause * 1e3:.0f} ms pause; missed: 200s never seen. After the second bar:"
        " POST->REG, median from the POST (its last segment) to the first REGISTER on the"
        " wire; commit, median of the durable commits made in the same run, one after each"
        " bare exchange; over: the first minus the second (aim: at most 0.3); fsync->REG"
        " (--trace-commits): median from the end of the commit's fsync to the first REGISTER."
        " Client-side"
        " p50, POST"
        " answer read: "
        + ", ".join(
            f"{t} {statistics.median(c.post for c in r.changes):.2f}"
            for t, r in results.items()
            if r.changes
        )
        + "; bare 200 read: "
        + ", ".join(
            f"{t} {statistics.median(b.client for b in r.bare):.2f}"
            for t, r in results.items()
            if r.bare
        )
    )


def check_requirements(trace_commits: bool) -> None:
    if os.geteuid() != 0:
        raise SystemExit("run as root: the capture on lo needs it")
    for program in ("tshark", "dumpcap"):
        if shutil.which(program) is None:
            raise SystemExit(f"needs {program}: apt-get install tshark")
    if trace_commits and shutil.which("strace") is None:
        raise SystemExit("needs strace for --trace-commits: apt-get install strace")
    for program in ("kamailio", "kamcmd"):
        if shutil.which(program) is None:
            raise SystemExit(f"needs {program}: scripts/install-peers")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--changes", type=int, default=50, help="counted, per transport")
    parser.add_argument("--warmup", type=int, default=3, help="uncounted, per transport")
    parser.add_argument(
        "--pause", type=float, default=0.15, help="s after each POST, before the bare exchange"
    )
    parser.add_argument("--gap", type=float, default=0.02, help="s after each bare exchange")
    parser.add_argument("--transports", default=",".join(TRANSPORTS))
    parser.add_argument(
        "--trace-commits",
        action="store_true",
        help="run the service under strace: from each commit's fsync to the first REGISTER",
    )
    args = parser.parse_args()
    check_requirements(args.trace_commits)
    users = {AGENT_USER: "first-pw", BARE_USER: "bare-secret"}
    kamailio = Kamailio(free_port(both=True), free_tcp_port(), users, realm=REALM)
    with tempfile.TemporaryDirectory(prefix="intercom-bench-apply-") as tmp:
        work = Path(tmp)
        keylog = work / "tls-keys.log"
        keylog.touch(mode=0o600)
        fsyncs = work / "fsyncs.txt" if args.trace_commits else None
        service = Service(work / "data", kamailio.ca_cert, keylog, fsyncs)
        capture: Capture | None = None
        floor: Floor | None = None
        results: dict[str, Results] = {}
        try:
            kamailio.start()
            service.start()
            capture = Capture(kamailio.sip_port, kamailio.tls_port, service.port, keylog)
            capture.start()
            sync(kamailio, capture)
            floor = Floor(work / "floor")
            for transport in args.transports.split(","):
                results[transport] = run_transport(
                    transport, service, kamailio, capture, keylog, floor, fsyncs, args
                )
        finally:
            service.stop()
            if floor is not None:
                floor.store.close()
            if capture is not None:
                capture.stop()
            kamailio.close()
    report(results, args)
    alone = commit_floor()
    print(
        f"for scale: a durable commit of the store alone (bench/commit_rate.py, 2 s, after the"
        f" runs): p50 {alone['p50']:.2f} ms, p99 {alone['p99']:.2f} ms"
    )


def commit_floor() -> dict[str, float]:
    command = [sys.executable, str(ROOT / "bench" / "commit_rate.py"), "--seconds", "2"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    figures: dict[str, float] = json.loads(output)
    return figures


def sync(kamailio: Kamailio, capture: Capture) -> None:
    """Return once the capture has delivered everything sent so far (it keeps order):
    wait for an OPTIONS sent now."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        start = time.time()
        sipclient.answers_options(("127.0.0.1", kamailio.sip_port))
        if capture.wait(lambda m, t=start: m.time >= t and m.cseq_method == "OPTIONS", 1.0):
            return
    raise SystemExit("the capture sees nothing on lo")


if __name__ == "__main__":
    socket.setdefaulttimeout(10)
    main()
