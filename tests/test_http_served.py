"""The HTTP server of `intercom-sip serve` against hostile clients (issue 6)."""

import json
import re
import socket
from pathlib import Path

import pytest

from tests.http_client import Client, closed_by_server, read_answer
from tests.served import Served

pytestmark = pytest.mark.served

MB = 1024 * 1024
INFO = b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def connect(service: Served) -> Client:
    host, port = service.url.removeprefix("http://").rsplit(":", 1)
    return Client(socket.create_connection((host, int(port)), timeout=10))


def rss_mb(service: Served) -> float:
    assert service.process is not None
    status = Path(f"/proc/{service.process.pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match
    return int(match[1]) / 1024


def test_pipelined_answers_never_read_keep_memory_bounded(tmp_path: Path) -> None:
    service = Served(tmp_path / "data").start()
    clients = [connect(service) for _ in range(4)]
    try:
        burst = INFO * 2000
        for client in clients:
            client.settimeout(3)  # the server stops reading: sends block, then time out
            pushed = 0
            # A blocked write is cut after --http-timeout (10 s): a broken pipe then.
            with pytest.raises((TimeoutError, BrokenPipeError, ConnectionResetError)):
                while pushed < 50 * MB:
                    client.sendall(burst)
                    pushed += len(burst)
        assert rss_mb(service) < 100
        assert service.call("GET", "/api/info")[0] == 200
        assert rss_mb(service) < 100
    finally:
        for client in clients:
            client.close()
        assert service.stop() == 0


def test_at_the_file_limit_the_api_still_answers(tmp_path: Path) -> None:
    service = Served(tmp_path / "data", file_limit=160).start()
    clients: list[socket.socket] = []
    try:
        before = len(service.lines)
        for _ in range(300):  # more than the file limit: idle ones give way
            clients.append(socket.create_connection(("127.0.0.1", _port(service)), timeout=10))
        assert service.call("GET", "/api/info")[0] == 200
        assert service.call("GET", "/api/info")[0] == 200
    finally:
        for client in clients:
            client.close()
        assert service.stop() == 0
    after = service.lines[before:]
    assert len(after) < 30, "".join(after)
    assert "Traceback" not in "".join(after)


def test_heads_bad_requests_and_idle_connections(tmp_path: Path) -> None:
    service = Served(tmp_path / "data", "--http-timeout", "0.5").start()
    try:
        with connect(service) as big:
            big.sendall(INFO.replace(b"\r\n\r\n", b"\r\nX-Big: " + b"a" * 17 * 1024 + b"\r\n\r\n"))
            status, _, body = read_answer(big)
            assert status == 431
            assert json.loads(body) == {"error": "Request header fields too large"}
            assert closed_by_server(big)
        with connect(service) as bad:
            bad.sendall(b"not http\r\n\r\n")
            status, headers, body = read_answer(bad)
            assert headers[b"content-type"] == b"application/json"
            assert (status, json.loads(body)) == (400, {"error": "Bad request"})
        with connect(service) as idle, connect(service) as slow:
            slow.sendall(b"GET /api/info HTTP/1.1\r\n")
            assert closed_by_server(idle)
            assert closed_by_server(slow)
        with connect(service) as fine:
            fine.sendall(INFO)
            assert read_answer(fine)[0] == 200
    finally:
        assert service.stop() == 0


def _port(service: Served) -> int:
    return int(service.url.rsplit(":", 1)[1])
