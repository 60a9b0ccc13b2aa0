"""A building in one process: `intercom-sip serve --devices N`, for N = 100, 500 and 1,000.

Run: .venv/bin/python bench/many.py [--devices 100 500 1000] [--window 25]

Kamailio (tests/peers/kamailio.py) knows users 2000.. 2000+N-1; device i registers as
user 2000+i from its own address (a random free 127.x.y.0 block). Each device's settings
are written into its store before the start, as a device that ran before holds them.
Two runs per N:

1. Interval 900 s (no refresh in the run): the time from the process's start to all N
   AoRs in Kamailio's `ul.dump`; RSS per device, (RSS at N - RSS of a 1-device run)
   / (N - 1); the process's CPU (utime + stime, /proc) over `window` seconds with nothing
   to do but the UDP keep-alives (one per device every 25 s, RFC 5626's default here).
2. Interval 30 s (the shortest the contract allows: every device refreshes about every
   25 s, and the start spread them): GET settings p50/p99 on one device for `window`
   seconds (one connection, one request at a time); then 100 calls to devices 0..99
   (99 for N = 100; auto-answer; the devices send their tone, the callers no RTP), and
   while they last INVITE -> 180 for the last device, 20 times.

Also: the RSS of one idle thread (a device's store writer starts its thread at its first
write and keeps it), measured in this process with 500 parked threads.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.building import Building
from tests.peers import kamcmd, uac
from tests.peers.kamailio import Kamailio
from tests.peers.ports import free_port, free_rtp_window, free_tcp_port

from intercom_sip.contract.fields import FACTORY
from intercom_sip.contract.settings import Settings
from intercom_sip.contract.validation import validate
from intercom_sip.store import Store

FIRST_USER = 2000
CALLS = 100
INVITES = 20


def users(devices: int) -> dict[str, str]:
    return {str(FIRST_USER + i): f"pw{FIRST_USER + i}" for i in range(devices)}


def seed(building: Building, kamailio: Kamailio, interval: int, auto_answer: int) -> None:
    """Each device's settings (and auto-answer for the first `auto_answer`) in its store."""

    def one(i: int) -> None:
        user = str(FIRST_USER + i)
        body = {
            "enable": True,
            "proxy": f"127.0.0.1:{kamailio.sip_port}",
            "realm": kamailio.realm,
            "user": user,
            "password": kamailio.users[user],
            "transport": "udp",
            "timeout": 120,
            "registration_interval": interval,
            "stun": {"ip": "", "port": 0},
        }
        settings = validate(body, FACTORY)
        assert isinstance(settings, Settings), settings
        store = Store.open(building.data_dir / building.address(i))
        store.save_settings(settings, FACTORY, time.time(), "bench")
        if i < auto_answer:
            store.save_auto_answer(True)
        store.close()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(building.devices)))


def registered(kamailio: Kamailio) -> int:
    """Contacts in Kamailio's location table (its statistic: `ul.dump` of 1,000 AoRs is
    more than its RPC answers, "error creating aor struct")."""
    text = kamcmd.run(kamailio.ctl, "stats.get_statistics", "usrloc:", timeout=20)
    for line in text.splitlines():
        name, _, value = line.partition(" = ")
        if name.strip() == "usrloc:location_contacts":
            return int(value)
    raise RuntimeError(f"no usrloc:location_contacts in {text!r}")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def building_at(
    devices: int, interval: int, auto_answer: int = 0
) -> Iterator[tuple[Building, Kamailio, float]]:
    """A started Kamailio and building, all registered; yields the seconds it took. Every
    device binds its RTP ports on its own address: one small range serves them all."""
    kamailio = Kamailio(free_port(both=True), free_tcp_port(), users(devices))
    kamailio.start()
    root = Path(tempfile.mkdtemp(prefix="many-"))
    options = (
        "--rtp-ports",
        free_rtp_window(4),
        "--media-timeout",
        "600",
        "--auto-answer-delay",
        "0.2",
    )
    building = Building(root / "data", devices, *options)
    try:
        seed(building, kamailio, interval, auto_answer)
        started = time.monotonic()
        building.start(timeout=120)
        while registered(kamailio) < devices:
            if time.monotonic() - started > 120:
                raise SystemExit(f"not all registered after 120 s:\n{building.log[-3000:]}")
            time.sleep(0.2)
        yield building, kamailio, time.monotonic() - started
    finally:
        building.stop()
        kamailio.close()


def idle_run(devices: int, window: float, baseline_kb: int | None) -> tuple[float, int, float]:
    with building_at(devices, 900) as (building, _, took):
        assert building.process is not None
        pid = building.process.pid
        time.sleep(2)  # the start's garbage settles
        rss = rss_kb(pid)
        before = cpu_seconds(pid)
        time.sleep(window)
        cpu = (cpu_seconds(pid) - before) / window * 100
    per_device = 0 if baseline_kb is None else (rss - baseline_kb) / (devices - 1)
    return took, int(per_device), cpu


def gets(building: Building, window: float) -> list[float]:
    token = building.login(1)
    conn = http.client.HTTPConnection(building.address(1), building.port, timeout=10)
    headers = {"Authorization": f"Bearer {token}"}
    times: list[float] = []
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        started = time.perf_counter()
        conn.request("GET", "/api/v1/device/sip/settings", headers=headers)
        reply = conn.getresponse()
        reply.read()
        times.append((time.perf_counter() - started) * 1000)
        assert reply.status == 200
    conn.close()
    return times


class Call:
    """A caller through Kamailio that keeps its call up (absorbing the device's RTP)."""

    def __init__(self, kamailio: Kamailio, user: str) -> None:
        self.rtp, self.rtcp = uac.bind_pair()
        self.caller = uac.Caller(("127.0.0.1", kamailio.sip_port), user)
        sdp = uac.offer(self.rtp.getsockname()[1], 1, uac.PLAIN_MEDIA)
        final = self.caller.invite(sdp)
        assert final.status == 200, final.status

    def close(self) -> None:
        self.caller.bye()
        self.caller.close()
        self.rtp.close()
        self.rtcp.close()


def invite_to_180(kamailio: Kamailio, user: str) -> float:
    """ms from our INVITE's send to the 180's arrival; the call is then answered and ended."""
    rtp, rtcp = uac.bind_pair()
    caller = uac.Caller(("127.0.0.1", kamailio.sip_port), user)
    try:
        sdp = uac.offer(rtp.getsockname()[1], 1, uac.PLAIN_MEDIA)
        caller.cseq = 1
        uri = f"sip:{user}@127.0.0.1:{kamailio.sip_port}"
        sent = time.perf_counter()
        caller.conn.send(caller._text("INVITE", uri, sdp, 1, True))
        ringing = 0.0
        while True:
            message = caller.conn.receive()
            if message.status == 180 and not ringing:
                ringing = time.perf_counter()
            if message.status >= 200 and message.header("CSeq") == "1 INVITE":
                break
        assert message.status == 200, message.status
        caller.to = message.header("To") or ""
        caller.remote_target = uac._uri(message.header("Contact") or "")
        caller.routes = message.all("Record-Route")[::-1]
        caller._ack()
        caller.bye()
        return (ringing - sent) * 1000
    finally:
        caller.close()
        rtp.close()
        rtcp.close()


def busy_run(devices: int, window: float) -> tuple[list[float], list[float], int]:
    """GETs while refreshing; INVITE -> 180 for the last device while `calls` others
    (100, or all the others when fewer) are in calls."""
    calls_up = min(CALLS, devices - 1)
    with building_at(devices, 30, auto_answer=devices) as (building, kamailio, _):
        times = gets(building, window)
        with ThreadPoolExecutor(16) as pool:
            calls = list(pool.map(lambda i: Call(kamailio, str(FIRST_USER + i)), range(calls_up)))
        try:
            rings = []
            for _ in range(INVITES):
                rings.append(invite_to_180(kamailio, str(FIRST_USER + devices - 1)))
                time.sleep(0.5)  # the device's call log written, its phone idle again
        finally:
            for call in calls:
                call.close()
    return times, rings, calls_up


def thread_kb(count: int = 500) -> float:
    """RSS of one parked thread (a ThreadPoolExecutor's idle worker waits the same way)."""
    before = rss_kb(os.getpid())
    stop = threading.Event()
    threads = [threading.Thread(target=stop.wait) for _ in range(count)]
    for thread in threads:
        thread.start()
    after = rss_kb(os.getpid())
    stop.set()
    for thread in threads:
        thread.join()
    return (after - before) / count


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--window", type=float, default=25.0)
    args = parser.parse_args()
    print(f"idle thread: {thread_kb():.1f} KB RSS each (500 parked)", flush=True)
    with building_at(1, 900) as (one, _, _):
        assert one.process is not None
        time.sleep(2)
        baseline = rss_kb(one.process.pid)
    print(f"1 device: RSS {baseline / 1024:.1f} MB", flush=True)
    print(
        "devices | RSS/device | start->all registered | idle CPU | GET p50/p99 (n)"
        " while refreshing | INVITE->180 p50/max with 100 in calls",
        flush=True,
    )
    for devices in args.devices:
        took, per_device, cpu = idle_run(devices, args.window, baseline)
        times, rings, calls_up = busy_run(devices, args.window)
        print(
            f"{devices:7d} | {per_device / 1024:6.2f} MB | {took:6.1f} s | {cpu:5.2f} % |"
            f" {percentile(times, 0.5):.2f}/{percentile(times, 0.99):.2f} ms ({len(times)}) |"
            f" {statistics.median(rings):.1f}/{max(rings):.1f} ms ({calls_up} in calls)",
            flush=True,
        )


if __name__ == "__main__":
    main()
