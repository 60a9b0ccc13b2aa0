"""A raw HTTP/1.1 client for tests: the bytes we send, the answers as they come."""

import socket
import time
from typing import Any


def request(path: str = "/", host: str = "localhost", extra: bytes = b"") -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (path.encode(), host.encode(), extra)


class Client(socket.socket):
    """A client socket that keeps what it read beyond one answer for the next."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock.family, sock.type, sock.proto, fileno=sock.detach())
        self.settimeout(10)
        self.pending = b""


def read_answer(sock: Client) -> tuple[int, dict[bytes, bytes], bytes]:
    """One answer: status, headers (last of each name), body by its Content-Length."""
    data = sock.pending
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a whole head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = dict(line.lower().split(b": ", 1) for line in lines[1:])
    size = int(headers[b"content-length"])
    while len(rest) < size:
        chunk = sock.recv(65536)
        assert chunk, "closed before a whole body"
        rest += chunk
    sock.pending = rest[size:]
    return int(lines[0].split(b" ")[1]), headers, rest[:size]


def closed_by_server(sock: socket.socket, within: float = 10.0) -> bool:
    """Whether the server closes the connection within `within` seconds (what comes
    before the close is dropped)."""
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)
