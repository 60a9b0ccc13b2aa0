"""A real call's RTP send times, the monitor's beside baresip's, idle and under HTTP load.

Run (as root, for the capture on lo): .venv/bin/python bench/media.py [--seconds 60]

Kamailio, the monitor (`intercom-sip serve`, user 101, auto-answer) and baresip (201)
run on 127.0.0.1; baresip calls the monitor and the call lasts two windows of `seconds`:
first idle, then while `wrk` keeps 50 HTTP connections busy on the monitor's API (call
status, SIP settings, and auto-answer flipped on and off: each POST a durable commit).
A capture on lo (tests/peers/sniffer.py, kernel timestamps as each datagram leaves its
sender) times both senders' packets: a packet's lateness is its departure minus its
place on the 20 ms schedule (its RTP timestamp / 8000), the schedule anchored at the
window's earliest packet. CPU per call is each process's utime + stime
(/proc/PID/stat) over the idle window, less what it used in a window as long with no
call (registered, doing nothing).

With --pin (default), the monitor and baresip share core 0 and wrk gets core 1, so the
two senders meet the same conditions. Aims (issue 7): the monitor's p99 lateness <=
2 ms and none over 20 ms under the load; its CPU per call no more than baresip's.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the peers of the tests: Kamailio, baresip, the capture

from tests.peers import sniffer  # noqa: E402
from tests.peers.baresip import Account, Baresip, Registrar  # noqa: E402
from tests.peers.kamailio import Kamailio  # noqa: E402
from tests.peers.ports import free_port, free_tcp_port  # noqa: E402
from tests.peers.test_agent import Device, body, registered  # noqa: E402

USERS = {"101": "secret01", "201": "pw201"}
RTP_PORTS = (43000, 43099)  # the monitor's; baresip's packets are those sent to them
CLIENTS = 50
AUTO_ANSWER = "/api/v1/device/call/auto_answer"
MONITOR_CORE, LOAD_CORE = "0", "1"
TICKS = os.sysconf("SC_CLK_TCK")
MAX_SHOWN = 12  # times of late packets printed per sender

# wrk's Lua: four requests in turn; the POSTs flip auto-answer (a durable change each).
# Formatted at the first request, not at load: only then has wrk set the Host header.
LUA = """
local requests = nil
local function make()
  local json = {}  -- a headers table replaces wrk's: keep its -H Authorization
  for name, value in pairs(wrk.headers) do json[name] = value end
  json["Content-Type"] = "application/json"
  return {
    wrk.format("GET", "/api/v1/call/status"),
    wrk.format("GET", "/api/v1/device/sip/settings"),
    wrk.format("POST", "/api/v1/device/call/auto_answer", json, '{"is_enabled": false}'),
    wrk.format("POST", "/api/v1/device/call/auto_answer", json, '{"is_enabled": true}'),
  }
end
local n = 0
request = function()
  requests = requests or make()
  n = n + 1
  return requests[(n % #requests) + 1]
end
done = function(summary, latency, requests)
  io.write(string.format('JSON {"requests": %d, "seconds": %f, "p99_ms": %f, '
    .. '"errors": %d, "non2xx": %d}\\n', summary.requests, summary.duration / 1e6,
    latency:percentile(99) / 1e3,
    summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, summary.errors.status))
end
"""


@dataclass(frozen=True)
class Figures:
    """One sender in one window: packets, lateness (ms) p50/p99/max, slots skipped."""

    packets: int
    p50: float
    p99: float
    worst: float
    over_20: int
    skipped: int
    late_at: tuple[float, ...]  # seconds into the window of the packets over 20 ms

    def line(self) -> str:
        return (
            f"{self.packets:5d} packets  lateness p50 {self.p50:6.3f}  p99 {self.p99:6.3f}"
            f"  max {self.worst:7.3f} ms  >20 ms: {self.over_20}  slots skipped: {self.skipped}"
            + (f"\n{'':11s}over 20 ms at (s): {list(self.late_at)}" if self.late_at else "")
        )


def lateness(datagrams: list[sniffer.Datagram]) -> Figures:
    """Departure minus scheduled time for each audio packet of one stream."""
    marks: list[tuple[float, int]] = []  # (departure, RTP timestamp unwrapped)
    first: int | None = None
    for d in datagrams:
        rtp = sniffer.rtp_payload(d.payload)
        if rtp is None or rtp[0] not in (0, 8):
            continue  # not audio (telephone-event, RTCP)
        stamp = int.from_bytes(d.payload[4:8], "big")
        first = stamp if first is None else first
        marks.append((d.at, (stamp - first) % (1 << 32)))
    if not marks:
        return Figures(0, 0.0, 0.0, 0.0, 0, 0, ())
    late = schedule_lateness(marks)
    ordered = sorted(stamp for _, stamp in marks)
    skipped = sum((b - a) // 160 - 1 for a, b in itertools.pairwise(ordered) if b - a > 160)
    worst = tuple(
        round(at - marks[0][0], 1) for (at, _), x in zip(marks, late, strict=True) if x > 20
    )
    ranked = sorted(late)
    return Figures(
        len(ranked),
        round(ranked[len(ranked) // 2], 3),
        round(ranked[max(0, -(-len(ranked) * 99 // 100) - 1)], 3),
        round(ranked[-1], 3),
        len(worst),
        skipped,
        worst[:MAX_SHOWN],
    )


def schedule_lateness(marks: list[tuple[float, int]]) -> list[float]:
    """Milliseconds late, against a schedule fitted to the stream: a line through the
    earliest departure of each second (the sender's clock and the capture's may run at
    slightly different rates), so that lateness is what the sender added, >= 0."""
    start = marks[0][0]
    offsets = [(at - start, at - stamp / 8000) for at, stamp in marks]
    floors: dict[int, tuple[float, float]] = {}
    for t, offset in offsets:
        second = int(t)
        if second not in floors or offset < floors[second][1]:
            floors[second] = (t, offset)
    points = list(floors.values())
    mean_t = sum(t for t, _ in points) / len(points)
    mean_o = sum(o for _, o in points) / len(points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    slope = sum((t - mean_t) * (o - mean_o) for t, o in points) / spread if spread else 0.0
    residuals = [offset - slope * t for t, offset in offsets]
    anchor = min(residuals)
    return [(r - anchor) * 1000 for r in residuals]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads."""
    user, system = cpu_split(pid)
    return user + system


def cpu_split(pid: int) -> tuple[float, float]:
    """utime and stime (s) of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def pin(pid: int, core: str) -> None:
    subprocess.run(["taskset", "-a", "-c", "-p", core, str(pid)], check=True, capture_output=True)


def wrk(url: str, token: str, seconds: int, work: Path, pinned: bool) -> subprocess.Popen[str]:
    script = work / "load.lua"
    script.write_text(LUA)
    command = ["wrk", "-t1", f"-c{CLIENTS}", f"-d{seconds}s", "-s", str(script)]
    command += ["-H", f"Authorization: Bearer {token}", url]
    if pinned:
        command = ["taskset", "-c", LOAD_CORE, *command]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wrk_figures(load: subprocess.Popen[str]) -> dict[str, float]:
    output, _ = load.communicate(timeout=60)
    line = next((x for x in output.splitlines() if x.startswith("JSON ")), None)
    if line is None:
        raise SystemExit(f"wrk said:\n{output}")
    figures: dict[str, float] = json.loads(line[5:])
    return figures


def window(capture: sniffer.Sniffer, start: float, end: float) -> dict[str, Figures]:
    """Both senders' figures for the packets that left between `start` and `end`."""
    taken = [d for d in capture.taken() if start <= d.at < end]
    ours = [d for d in taken if RTP_PORTS[0] <= d.source[1] <= RTP_PORTS[1]]
    theirs = [d for d in taken if RTP_PORTS[0] <= d.destination[1] <= RTP_PORTS[1]]
    return {"monitor": lateness(ours), "baresip": lateness(theirs)}


@dataclass
class Run:
    """What one run measured."""

    seconds: int
    pinned: bool
    recording: bool
    idle: dict[str, Figures]
    loaded: dict[str, Figures]
    http: dict[str, float]
    rtp: object
    per_call: dict[str, float]  # share of a core, less the no-call baseline
    no_call: dict[str, float]
    split: dict[str, tuple[float, ...]]  # user, system: share of a core in the idle window
    captured: int
    dropped: int


@contextlib.contextmanager
def peers(seconds: int, recording: bool, work: Path) -> Iterator[tuple[Device, Baresip]]:
    """Kamailio, the monitor (registered, auto-answer on) and baresip (registered)."""
    kamailio = Kamailio(free_port(both=True), free_tcp_port(), USERS)
    device = Device(work / "data", kamailio.ca_cert)
    ports = f"{RTP_PORTS[0]}-{RTP_PORTS[1]}"
    device.extra = ("--rtp-ports", ports, "--auto-answer-delay", "0.2")
    if recording:
        (work / "recordings").mkdir()
        device.extra += ("--recordings", str(work / "recordings"))
    device.log_level = "info"  # the "ready" line is what Served waits for
    account = Account("201", USERS["201"])
    phone = Baresip(Registrar.of(kamailio), account, tone_seconds=2 * seconds + 60)
    try:
        kamailio.start()
        device.start()
        settings = body(kamailio, "udp", user="101", password=USERS["101"], timeout=300)
        assert device.post(settings)[0] == 200, device.log
        device.wait_status(registered)
        assert device.served is not None
        on = {"is_enabled": True}
        assert device.served.call("POST", AUTO_ANSWER, device.token, on)[0] == 200
        phone.start()
        yield device, phone
    finally:
        phone.close()
        device.stop()
        kamailio.close()


def measure(seconds: int, pinned: bool, recording: bool, work: Path) -> Run:
    capture = sniffer.Sniffer(
        lambda d: any(RTP_PORTS[0] <= p <= RTP_PORTS[1] for p in (d.source[1], d.destination[1]))
    )
    with peers(seconds, recording, work) as (device, phone):
        assert device.served is not None and device.served.process is not None
        assert phone._process is not None
        served = device.served
        pids = {"monitor": served.process.pid, "baresip": phone._process.pid}
        if pinned:
            for pid in pids.values():
                pin(pid, MONITOR_CORE)
        quiet = min(seconds, 20)
        base = {name: cpu_seconds(pid) for name, pid in pids.items()}
        time.sleep(quiet)
        no_call = {name: (cpu_seconds(pid) - base[name]) / quiet for name, pid in pids.items()}
        capture.start()
        try:
            phone.dial(phone.uri("101"))
            phone.wait_event("CALL_ESTABLISHED")
            time.sleep(2)  # past the call's start
            t0, cpu0 = time.time(), {name: cpu_split(pid) for name, pid in pids.items()}
            time.sleep(seconds)
            t1, cpu1 = time.time(), {name: cpu_split(pid) for name, pid in pids.items()}
            load = wrk(served.url, device.token, seconds, work, pinned)
            time.sleep(seconds + 0.5)
            t2 = time.time()
            http = wrk_figures(load)
            rtp = served.call("GET", "/api/v1/call/status", device.token)[1].get("rtp")
            phone.hangup()
        finally:
            capture.stop()
    per_call = {n: (sum(cpu1[n]) - sum(cpu0[n])) / (t1 - t0) - no_call[n] for n in pids}
    split = {
        n: tuple((b - a) / (t1 - t0) for a, b in zip(cpu0[n], cpu1[n], strict=True)) for n in pids
    }
    return Run(
        seconds,
        pinned,
        recording,
        window(capture, t0, t1),
        window(capture, t1 + 0.5, t2),
        http,
        rtp,
        per_call,
        no_call,
        split,
        len(capture.datagrams),
        capture.dropped,
    )


def report(run: Run) -> None:
    print(
        f"One call, baresip (201) -> the monitor (101) through Kamailio, {run.seconds} s a window"
    )
    print(f"pinned: {'monitor and baresip on core 0, wrk on core 1' if run.pinned else 'no'}")
    print(f"monitor records the call: {'yes' if run.recording else 'no'} (baresip: sndfile, yes)")
    print(f"capture: {run.captured} datagrams, {run.dropped} dropped")
    for name, figures in (("idle", run.idle), (f"HTTP load ({CLIENTS} clients)", run.loaded)):
        print(f"\n{name}:")
        for sender, f in figures.items():
            print(f"  {sender:8s} {f.line()}")
    http = run.http
    print(
        f"\nHTTP load: {http['requests'] / http['seconds']:.0f} requests/s, p99 "
        f"{http['p99_ms']:.1f} ms, {http['errors']} socket errors, {http['non2xx']} non-2xx"
    )
    print(f"the monitor's own RTP figures at the end: {run.rtp}")
    print("\nCPU per call (share of one core over the idle window, less the no-call baseline):")
    for name, share in run.per_call.items():
        user, system = run.split[name]
        print(
            f"  {name:8s} {100 * share:6.2f} %   (no call: {100 * run.no_call[name]:.2f} %;"
            f" in the call, user {100 * user:.2f} % + system {100 * system:.2f} %)"
        )
    m = run.loaded["monitor"]
    cpu_ok = run.per_call["monitor"] <= run.per_call["baresip"]
    print(
        "\naims: monitor p99 <= 2 ms under load: "
        f"{'met' if m.p99 <= 2 else 'MISSED'}; none over 20 ms: "
        f"{'met' if m.over_20 == 0 else 'MISSED'}; CPU per call <= baresip's: "
        f"{'met' if cpu_ok else 'MISSED'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=60, help="each window (default 60)")
    parser.add_argument("--no-pin", action="store_true", help="let the scheduler place all")
    parser.add_argument("--record", action="store_true", help="the monitor records too")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the capture on lo needs CAP_NET_RAW")
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="bench-media-") as work:
        report(measure(args.seconds, not args.no_pin, args.record, Path(work)))


if __name__ == "__main__":
    main()
