"""The idle service's CPU: registered, no call, nothing asked of it (issue 14).

Run: .venv/bin/python bench/idle.py [--seconds 60]

Kamailio and the monitor (`intercom-sip serve`, user 101 over UDP, registration interval
900 s) on 127.0.0.1, set up as bench/media.py's no-call baseline. Two windows of
`seconds`, neither holding a registration refresh: no client at all, then one event
stream open (the web page, reading). For each: the monitor's CPU as a share of one core
(utime + stime of all its threads, /proc/PID/stat: 10 ms ticks) and its wake-ups per
second (context switches of all its threads, /proc/PID/task/*/status).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the peers of the tests: Kamailio, the served monitor

from tests.peers.kamailio import Kamailio  # noqa: E402
from tests.peers.ports import free_port, free_tcp_port  # noqa: E402
from tests.peers.test_agent import Device, body, registered  # noqa: E402
from tests.sse import EventStream  # noqa: E402

from media import cpu_seconds  # noqa: E402 - bench/media.py, the no-call baseline's

INTERVAL = 900  # seconds asked of the registrar (the most a body may ask): no refresh in a window


def switches(pid: int) -> int:
    """Context switches so far, voluntary and not, of every thread of `pid`."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        for line in status.read_text().splitlines():
            if "ctxt_switches:" in line:
                total += int(line.split()[-1])
    return total


def window(name: str, pid: int, seconds: float) -> None:
    """Print the share of one core and the wake-ups per second over `seconds`."""
    cpu, woken, started = cpu_seconds(pid), switches(pid), time.monotonic()
    time.sleep(seconds)
    spent = time.monotonic() - started
    share, rate = (cpu_seconds(pid) - cpu) / spent, (switches(pid) - woken) / spent
    print(f"  {name:18s} CPU {100 * share:5.2f} % of a core   {rate:6.1f} wake-ups/s")


def measure(device: Device, seconds: float) -> None:
    assert device.served is not None and device.served.process is not None
    pid = device.served.process.pid
    time.sleep(2)  # past the start's last answers
    status = device.status()
    print(
        f"the monitor, registered (granted {status['expires']} s), no call; {seconds:.0f} s each:"
    )
    window("no client", pid, seconds)
    stream = EventStream(int(device.served.url.rpartition(":")[2]), device.token)
    window("one event stream", pid, seconds)
    stream.close()
    after = device.status()
    same = after["register_last_attempt"] == status["register_last_attempt"]
    print(f"  no REGISTER in the windows: {same}; still registered: {registered(after)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="each window (default 60)")
    seconds = parser.parse_args().seconds
    kamailio = Kamailio(free_port(both=True), free_tcp_port(), {"101": "secret"})
    with tempfile.TemporaryDirectory() as folder:
        device = Device(Path(folder) / "data")
        device.log_level = "info"
        try:
            kamailio.start()
            device.start()
            settings = body(kamailio, "udp", registration_interval=INTERVAL)
            assert device.post(settings)[0] == 200
            device.wait_status(registered)
            measure(device, seconds)
        finally:
            device.stop()
            kamailio.close()


if __name__ == "__main__":
    main()
