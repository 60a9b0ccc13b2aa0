"""Our HTTP listener in process, on its own event loop thread, with a small ASGI app."""

import asyncio
import json
import socket
import threading
import time
from typing import Any

from intercom_sip.api.connection import Limits
from intercom_sip.api.listener import Listener
from intercom_sip.server import bind


class EchoApp:
    """Answers the path and the body's length; `/hold` waits until `release` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls += 1
        if scope["path"] == "/hold":
            await asyncio.to_thread(self.release.wait, 30)
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        body = json.dumps({"path": scope["path"], "body": size}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class InProcess:
    def __init__(self, limits: Limits, max_connections: int = 100, sock: Any = None) -> None:
        self.app = EchoApp()
        self.sock = sock if sock is not None else bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.limits, self.max_connections = limits, max_connections
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    def start(self) -> "InProcess":
        self._thread.start()
        assert self._ready.wait(10)
        return self

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.listener = Listener(self.app, self.sock, self.limits, self.max_connections)
        self.listener.start()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await self.listener.stop(1.0)

    def stop(self) -> None:
        self.app.release.set()
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def connect(self) -> "Client":
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return Client(sock)

    def connections(self) -> int:
        return self.listener.connections


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
