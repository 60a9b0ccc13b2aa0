"""RFC 9112 / RFC 9110 as a hostile client tries them (issue 13), on both loops."""

import json
import socket
from collections.abc import Iterator

import pytest

from intercom_sip.api.connection import LINGER_BYTES, MAX_PIPELINED, Limits
from tests.api.serving import InProcess
from tests.http_client import Client, read_answer, request

BAD_REQUEST = (400, {"error": "Bad request"})
VERSION = (505, {"error": "HTTP version not supported"})
NOT_IMPLEMENTED = (501, {"error": "Transfer coding not implemented"})
RESET = b"<reset>"


@pytest.fixture(params=["uvloop", "asyncio"])
def server(request: pytest.FixtureRequest) -> Iterator[InProcess]:
    instance = InProcess(Limits(timeout=5.0), loop=request.param).start()
    yield instance
    instance.stop()


def answer(sock: Client) -> tuple[int, object]:
    status, _, body = read_answer(sock)
    return status, json.loads(body)


def rest(sock: Client) -> bytes:
    """All that comes until the server closes; RESET if it resets instead."""
    data = sock.pending
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        return data + RESET
    return data


def echoed(path: str, body: int = 0) -> tuple[int, object]:
    return 200, {"path": path, "body": body}


def test_length_and_chunked_together_answer_400_and_close(server: InProcess) -> None:
    """RFC 9112 §6.1: a request with both may be smuggling one; close after answering."""
    smuggled = request("/smuggled")
    with server.connect() as sock:
        sock.sendall(
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled
        )
        assert answer(sock) == BAD_REQUEST
        assert rest(sock) == b""
    assert server.app.calls == 0


def test_a_close_with_input_left_over_lingers(server: InProcess) -> None:
    """RFC 9112 §9.6: the extra CRLF after a `Connection: close` request must not turn
    the close into a reset that loses the answer."""
    with server.connect() as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Length: 2\r\n\r\nhi\r\n"
        )
        assert answer(sock) == echoed("/echo", 2)
        assert rest(sock) == b""


def test_a_close_after_the_answer_lingers_for_what_comes_late(server: InProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer(sock) == echoed("/a")
        sock.sendall(b"\r\n" * 100)  # after the server's close: read and dropped
        assert rest(sock) == b""


def test_pipelined_http_1_0_requests_get_the_first_answer_then_a_close(
    server: InProcess,
) -> None:
    """RFC 9112 §9.3: HTTP/1.0 without keep-alive closes after the first answer."""
    with server.connect() as sock:
        sock.sendall(b"GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.0\r\n\r\n")
        status, headers, body = read_answer(sock)
        assert (status, json.loads(body)) == echoed("/a")
        assert headers[b"connection"] == b"close"
        assert rest(sock) == b""
    assert server.app.calls == 1


def test_http_1_0_keep_alive_is_kept(server: InProcess) -> None:
    keep = b"Connection: keep-alive\r\n"
    with server.connect() as sock:
        sock.sendall(b"GET /a HTTP/1.0\r\n%b\r\nGET /b HTTP/1.0\r\n\r\n" % keep)
        status, headers, body = read_answer(sock)
        assert (status, json.loads(body), headers[b"connection"]) == (
            *echoed("/a"),
            b"keep-alive",
        )
        assert answer(sock) == echoed("/b")
        assert rest(sock) == b""


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/1.2", b"HTTP/3.0"])
def test_other_versions_answer_505(server: InProcess, version: bytes) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /a %b\r\nHost: x\r\n\r\n" % version)
        assert answer(sock) == VERSION
        assert rest(sock) == b""
    assert server.app.calls == 0


def test_an_absolute_form_target_is_served(server: InProcess) -> None:
    """RFC 9112 §3.2.2: a server must accept it; the target's authority is the host."""
    with server.connect() as sock:
        sock.sendall(b"GET http://127.0.0.1:8080/a%20b?x=1 HTTP/1.1\r\nHost: other\r\n\r\n")
        assert answer(sock) == echoed("/a b")
        sock.sendall(request("/next"))
        assert answer(sock) == echoed("/next")
    assert server.app.hosts == [b"127.0.0.1:8080", b"localhost"]


def test_head_gets_the_head_without_the_body(server: InProcess) -> None:
    """RFC 9110 §9.3.2: the same head as GET, no body; the connection goes on."""
    with server.connect() as sock:
        sock.sendall(request("/a"))
        got = read_answer(sock)
        sock.sendall(b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n" + request("/b"))
        data = b""
        while data.count(b"\r\n\r\n") < 2 or not data.endswith(b"}"):
            data += sock.recv(65536)
        head, _, after = data.partition(b"\r\n\r\n")
        assert head + b"\r\n\r\n" == got_head(got)
        assert after.startswith(b"HTTP/1.1 200 OK\r\n")  # /b's answer, no body before it


def got_head(answer: tuple[int, dict[bytes, bytes], bytes]) -> bytes:
    _, headers, _ = answer
    lines = [b"HTTP/1.1 200 OK", *(name + b": " + value for name, value in headers.items())]
    return b"\r\n".join(lines) + b"\r\n\r\n"


@pytest.mark.parametrize("coding", [b"gzip", b"gzip, chunked", b"deflate"])
def test_an_unknown_transfer_coding_answers_501(server: InProcess, coding: bytes) -> None:
    """RFC 9112 §6.1: a transfer coding the server does not understand."""
    with server.connect() as sock:
        sock.sendall(
            b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: %b\r\n\r\n0\r\n\r\n" % coding
        )
        assert answer(sock) == NOT_IMPLEMENTED
        assert rest(sock) == b""
    assert server.app.calls == 0


def test_a_chunked_body_reaches_the_app(server: InProcess) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n" + request("/after")
        )
        assert answer(sock) == echoed("/echo", 5)
        assert answer(sock) == echoed("/after")


def test_expect_100_continue_is_answered_before_the_body(server: InProcess) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
        )
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"abc")
        assert answer(sock) == echoed("/echo", 3)


def test_a_pipeline_past_the_bound_is_answered_that_far_then_closed(server: InProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"".join(request(f"/{n}") for n in range(MAX_PIPELINED + 10)))
        answers = [answer(sock) for _ in range(MAX_PIPELINED)]
        assert answers == [echoed(f"/{n}") for n in range(MAX_PIPELINED)]
        assert rest(sock) == b""


def test_a_lingering_close_is_cut_when_the_client_pushes_on(server: InProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer(sock) == echoed("/a")
        pushed = 0
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            while pushed < 100 * LINGER_BYTES:
                pushed += sock.send(b"x" * 65536)
        assert pushed < 100 * LINGER_BYTES


def test_trailers_count_toward_the_head_limit(server: InProcess) -> None:
    trailers = b"".join(b"X-%d: %b\r\n" % (n, b"a" * 1000) for n in range(20))
    with server.connect() as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"1\r\na\r\n0\r\n" + trailers + b"\r\n"
        )
        with pytest.raises((AssertionError, ConnectionResetError)):
            answer(sock)  # the app runs already: the connection is cut, not answered


def test_a_target_not_ascii_answers_400(server: InProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer(sock) == BAD_REQUEST
    assert server.app.calls == 0


def test_no_answer_is_sent_to_a_client_that_reset(server: InProcess) -> None:
    sock = server.connect()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.sendall(request("/hold"))
    sock.close()  # a reset
    server.app.release.set()
    with server.connect() as other:
        other.sendall(request("/a"))
        assert answer(other) == echoed("/a")
