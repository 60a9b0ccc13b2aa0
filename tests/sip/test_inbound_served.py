"""Finding 13, on the service as a user runs it: a TCP stranger that pipelines OPTIONS
and never reads gets a few 403s, memory stays bounded and the API keeps answering; a connection
that carries nothing is closed after --sip-tcp-idle; --sip-tcp-max holds."""

import contextlib
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.served import Served

pytestmark = pytest.mark.served
OPTIONS = (
    "OPTIONS sip:101@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK{n}\r\n"
    "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:101@127.0.0.1>\r\n"
    "Call-ID: c{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)
BURST = "".join(OPTIONS.format(n=n) for n in range(100)).encode()
STRANGER_SENDS = 4 * 1024 * 1024  # far past every kernel buffer
RSS_GROWTH_AT_MOST = 40 * 1024  # KiB


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Served]:
    # Through the environment, which the options' other path reads.
    data = str(tmp_path / "data")
    options = ("--port", "0", "--data-dir", data, "--sip-host", "127.0.0.1", "--sip-port", "0")
    limits = {"INTERCOM_SIP_SIP_TCP_IDLE": "2", "INTERCOM_SIP_SIP_TCP_MAX": "4"}
    made = Served(tmp_path / "data", *options, env=limits).start()
    yield made
    made.stop()


def sip_port(service: Served) -> int:
    found = re.search(r"SIP on [\d.]+:(\d+) \(udp, tcp\)", service.log)
    assert found is not None, service.log
    return int(found[1])


def rss_kib(service: Served) -> int:
    assert service.process is not None
    status = Path(f"/proc/{service.process.pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB$", status, re.M)
    assert found is not None
    return int(found[1])


def connect(port: int, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(15)
    sock.connect(("127.0.0.1", port))
    return sock


def answered(sock: socket.socket) -> bool:
    """Whether an OPTIONS on this connection gets its 200 back."""
    try:
        sock.sendall(OPTIONS.format(n="x").encode())
        return sock.recv(4096).startswith(b"SIP/2.0 ")
    except OSError:
        return False


def closed(sock: socket.socket) -> bool:
    """Whether the service closes this connection (EOF or reset) within the timeout."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


def test_a_stranger_that_never_reads_costs_nothing_and_memory_stays_bounded(
    service: Served,
) -> None:
    """A stranger's pipelined OPTIONS get a stateless 403 each, at most 10 a second
    (CONTRACT §6.9): so little goes back that a peer that never reads cannot fill our
    output either."""
    before = rss_kib(service)
    sock = connect(sip_port(service), receive_buffer=4096)
    sent = 0
    with contextlib.suppress(OSError):
        while sent < STRANGER_SENDS:
            sock.sendall(BURST)
            sent += len(BURST)
    growth = rss_kib(service) - before
    sock.settimeout(0.5)
    answers = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            answers += chunk
    sock.close()
    forbidden = answers.count(b"SIP/2.0 403 Forbidden\r\n")
    assert (growth < RSS_GROWTH_AT_MOST, answers.count(b"SIP/2.0 ")) == (True, forbidden)
    assert 1 <= forbidden <= 10 * 30  # ten a second at most, however long the flood took
    assert service.call("GET", "/api/info")[0] == 200


def test_a_connection_that_carries_nothing_is_closed(service: Served) -> None:
    with connect(sip_port(service)) as sock:
        assert closed(sock)  # within the 15 s socket timeout, after the 2 s idle time


def test_the_inbound_cap_holds(service: Served) -> None:
    port = sip_port(service)
    socks = [connect(port) for _ in range(10)]
    try:
        # No wait needed: each OPTIONS waits for its answer, or for the close of a
        # connection past the cap, however late the service gets to it.
        still = sum(answered(sock) for sock in socks)
    finally:
        for sock in socks:
            sock.close()
    assert still == 4
    assert service.call("GET", "/api/info")[0] == 200
