"""Our HTTP listener in process, on its own event loop thread, with a small ASGI app."""

import asyncio
import json
import socket
import threading
from typing import Any

from intercom_sip.api.connection import Limits
from intercom_sip.api.listener import Listener
from intercom_sip.server import LOOPS, bind
from tests.http_client import Client


class EchoApp:
    """Answers the path and the body's length; `/hold` waits until `release` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0
        self.hosts: list[bytes] = []  # each request's Host, as the app sees it

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls += 1
        self.hosts += [value for name, value in scope["headers"] if name == b"host"]
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
    def __init__(
        self, limits: Limits, max_connections: int = 100, sock: Any = None, loop: str = "uvloop"
    ) -> None:
        self.app = EchoApp()
        self.sock = sock if sock is not None else bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.limits, self.max_connections = limits, max_connections
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(LOOPS[loop],), daemon=True)

    def start(self) -> "InProcess":
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def _run(self, loop_factory: Any) -> None:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(self._main())

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
