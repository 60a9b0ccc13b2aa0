"""A TCP peer that pipelines OPTIONS to the SIP port and never reads the answers.

Prints what it sent before the service dropped it, the service's RSS before and after,
and the API's latency (GET /api/info) while it floods. Run: `.venv/bin/python -m
bench.sip_tcp_flood` from the repository root.
"""

import re
import socket
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from tests.served import Served

SECONDS = 15.0
OPTIONS = (
    "OPTIONS sip:101@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK{n}\r\n"
    "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:101@127.0.0.1>\r\n"
    "Call-ID: c{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)
BURST = "".join(OPTIONS.format(n=n) for n in range(100)).encode()


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB$", status, re.M)
    return int(found[1]) / 1024 if found else float("nan")


def flood(port: int, until: float, result: dict[str, object]) -> None:
    """Connect again each time the service drops us, until `until`."""
    sent = drops = 0
    while time.monotonic() < until:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        try:
            while time.monotonic() < until:
                sock.sendall(BURST)
                sent += len(BURST)
        except OSError:
            drops += 1
        finally:
            sock.close()
    result.update(sent=sent, drops=drops)


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        served = Served(Path(directory) / "data").start()
        assert served.process is not None
        try:
            port = int(re.findall(r"SIP on [\d.]+:(\d+)", served.log)[0])
            before = rss_mib(served.process.pid)
            result: dict[str, object] = {}
            until = time.monotonic() + SECONDS
            thread = threading.Thread(target=flood, args=(port, until, result))
            thread.start()
            latencies = []
            while thread.is_alive():
                started = time.perf_counter()
                urllib.request.urlopen(served.url + "/api/info", timeout=30).read()
                latencies.append((time.perf_counter() - started) * 1000)
                time.sleep(0.1)
            thread.join()
            after = rss_mib(served.process.pid)
        finally:
            served.stop()
    print(f"flood of {SECONDS:.0f} s: {result['sent'] / 2**20:.0f} MiB of OPTIONS sent,")
    print(f"  dropped by the service {result['drops']} times")
    print(f"RSS: {before:.0f} MiB before, {after:.0f} MiB after")
    print(
        f"API GET /api/info during the flood: p50 {statistics.median(latencies):.1f} ms,"
        f" max {max(latencies):.1f} ms ({len(latencies)} requests)"
    )


if __name__ == "__main__":
    main()
