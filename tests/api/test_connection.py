"""One HTTP connection over real sockets on 127.0.0.1: heads, errors, pipelining, timeouts."""

import json
import socket
import time
from collections.abc import Iterator

import pytest

from intercom_sip.api.connection import Limits
from tests.api.serving import InProcess
from tests.http_client import Client, closed_by_server, read_answer, request, wait_for

TIMEOUT = 0.5  # the timeout tests' (`timed`)
PATIENT = 10.0  # the others': no client stall on a loaded machine may end their connection
BAD_REQUEST = (400, {"error": "Bad request"})
HEAD_TOO_LARGE = (431, {"error": "Request header fields too large"})


@pytest.fixture(params=["uvloop", "asyncio"])
def server(request: pytest.FixtureRequest) -> Iterator[InProcess]:
    instance = InProcess(Limits(timeout=PATIENT), loop=request.param).start()
    yield instance
    instance.stop()


@pytest.fixture(params=["uvloop", "asyncio"])
def timed(request: pytest.FixtureRequest) -> Iterator[InProcess]:
    instance = InProcess(Limits(timeout=TIMEOUT), loop=request.param).start()
    yield instance
    instance.stop()


def answer(sock: Client) -> tuple[int, object]:
    status, headers, body = read_answer(sock)
    assert headers[b"content-type"] == b"application/json"
    return status, json.loads(body)


def test_a_request_is_answered_and_the_connection_kept(server: InProcess) -> None:
    with server.connect() as sock:
        for path in ("/a", "/b"):
            sock.sendall(request(path))
            assert answer(sock) == (200, {"path": path, "body": 0})


def test_pipelined_requests_are_answered_in_order(server: InProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"".join(request(f"/{n}") for n in range(20)))
        assert [answer(sock) for _ in range(20)] == [
            (200, {"path": f"/{n}", "body": 0}) for n in range(20)
        ]


def test_a_body_in_pieces_reaches_the_app(server: InProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        for _ in range(10):
            sock.sendall(b"x" * 10000)
        assert answer(sock) == (200, {"path": "/echo", "body": 100000})


def test_a_head_of_15_kib_is_served(server: InProcess) -> None:
    with server.connect() as sock:
        sock.sendall(request("/big", extra=b"X-Big: " + b"a" * 15 * 1024 + b"\r\n"))
        assert answer(sock) == (200, {"path": "/big", "body": 0})


def test_a_head_over_16_kib_answers_431_and_closes(server: InProcess) -> None:
    with server.connect() as sock:
        sock.sendall(request("/big", extra=b"X-Big: " + b"a" * 17 * 1024 + b"\r\n"))
        assert answer(sock) == HEAD_TOO_LARGE
        assert sock.recv(100) == b""


def test_a_head_over_16_kib_in_pieces_answers_431(server: InProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        for n in range(17):
            sock.sendall(b"X-%d: %s\r\n" % (n, b"a" * 1000))
        assert answer(sock) == HEAD_TOO_LARGE
        assert closed_by_server(sock)


def test_many_small_headers_over_16_kib_answer_431(server: InProcess) -> None:
    with server.connect() as sock:
        lines = b"".join(b"X-%d: y\r\n" % n for n in range(2000))
        sock.sendall(request("/", extra=lines))
        assert answer(sock) == HEAD_TOO_LARGE


@pytest.mark.parametrize(
    "raw",
    [
        b"garbage\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nine\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n",
    ],
)
def test_malformed_requests_answer_json_400_and_close(server: InProcess, raw: bytes) -> None:
    with server.connect() as sock:
        sock.sendall(raw)
        assert answer(sock) == BAD_REQUEST
        assert closed_by_server(sock)
    assert server.app.calls == 0


def test_a_body_the_app_does_not_read_ends_the_connection(server: InProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        time.sleep(0.05)  # the app waits for the body; send it in a later read
        sock.sendall(b"0123456789")
        assert answer(sock) == (200, {"path": "/x", "body": 10})


def test_a_half_closed_client_gets_its_answers(server: InProcess) -> None:
    with server.connect() as sock:
        sock.sendall(request("/a") + request("/b"))
        sock.shutdown(socket.SHUT_WR)
        assert answer(sock) == (200, {"path": "/a", "body": 0})
        assert answer(sock) == (200, {"path": "/b", "body": 0})
        assert sock.recv(100) == b""


# --- timeouts (the service's --http-timeout; 0.5 s here) ------------------------------


def test_a_connection_that_sends_nothing_is_closed(timed: InProcess) -> None:
    with timed.connect() as sock:
        assert closed_by_server(sock)
    wait_for(lambda: timed.connections() == 0)


def test_a_connection_idle_after_its_answer_is_closed(timed: InProcess) -> None:
    with timed.connect() as sock:
        sock.sendall(request("/a"))
        assert answer(sock) == (200, {"path": "/a", "body": 0})
        assert closed_by_server(sock)


def test_a_slowloris_head_is_closed(timed: InProcess) -> None:
    with timed.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        for n in range(100):  # a header line every 0.1 s: 10 s unless closed
            try:
                sock.sendall(b"X-%d: y\r\n" % n)
            except (BrokenPipeError, ConnectionResetError):
                break
            if closed_by_server(sock, within=0.1):
                break
        else:
            pytest.fail("a head sent a line at a time was never closed")
    assert timed.app.calls == 0


def test_a_stalled_body_is_closed(timed: InProcess) -> None:
    with timed.connect() as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(100):  # a byte every 0.1 s: 10 s unless closed
            try:
                sock.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                break
            if closed_by_server(sock, within=0.1):
                break
        else:
            pytest.fail("a body sent a byte at a time was never closed")


def test_answers_left_unread_close_the_connection(timed: InProcess) -> None:
    with timed.connect() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(0.5)
        pushed = 0
        with pytest.raises((TimeoutError, ConnectionResetError, BrokenPipeError)):
            while pushed < 200_000_000:  # the server stops reading long before
                pushed += sock.send(request("/" + "x" * 1000) * 50)
        assert pushed < 200_000_000
        wait_for(lambda: timed.connections() == 0)


def test_a_slow_app_is_not_timed_out(timed: InProcess) -> None:
    with timed.connect() as sock:
        sock.sendall(request("/hold"))
        wait_for(lambda: timed.app.calls == 1)
        time.sleep(TIMEOUT * 4)
        timed.app.release.set()
        assert answer(sock) == (200, {"path": "/hold", "body": 0})
