"""Drive the ASGI app in process: one event loop per client, real store, real threads."""

import asyncio
import contextlib
import json
from collections.abc import Iterable
from typing import Any

from intercom_sip.api.app import Api
from tests.conformance import DOCUMENT


class AsgiClient:
    def __init__(self, app: Api, client: str = "127.0.0.1") -> None:
        self.app = app
        self.client = client
        self.last_headers: list[tuple[bytes, bytes]] = []
        self.runner = asyncio.Runner()
        self.runner.run(self._lifespan("startup"))

    def close(self) -> None:
        self.runner.run(self._lifespan("shutdown"))
        self.runner.close()

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
        query: str = "",
        host: str | None = "127.0.0.1:8080",
        chunks: int = 1,
    ) -> tuple[int, Any]:
        status, raw = self.runner.run(self._call(method, path, body, headers, query, host, chunks))
        if (b"content-type", b"application/json") not in self.last_headers:
            return status, raw.decode()  # the page's files, the events
        return status, json.loads(raw)

    def get(self, path: str, token: str | None = None, **kwargs: Any) -> tuple[int, Any]:
        return self.request("GET", path, headers=_auth(token), **kwargs)

    def post(self, path: str, body: Any, token: str | None = None) -> tuple[int, Any]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.request("POST", path, raw, headers=_auth(token))

    async def _call(
        self,
        method: str,
        path: str,
        body: bytes,
        headers: Iterable[tuple[str, str]],
        query: str,
        host: str | None,
        chunks: int,
    ) -> tuple[int, bytes]:
        raw_headers = [(k.lower().encode(), v.encode("latin-1")) for k, v in headers]
        if host is not None:
            raw_headers.append((b"host", host.encode()))
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "query_string": query.encode(),
            "headers": raw_headers,
            "client": (self.client, 50000),
        }
        size = max(1, -(-len(body) // chunks))
        pieces = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
        incoming = [
            {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1}
            for i, piece in enumerate(pieces)
        ]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return incoming.pop(0) if incoming else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        start, *pieces = sent
        assert [p.get("more_body", False) for p in pieces] == [True] * (len(pieces) - 1) + [False]
        body = b"".join(p["body"] for p in pieces)
        self.last_headers = list(start["headers"])
        answer = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]]
        DOCUMENT.check(method, path, start["status"], answer, body)
        return start["status"], body

    async def _lifespan(self, phase: str) -> None:
        messages = [{"type": f"lifespan.{phase}"}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            await asyncio.sleep(3600)  # the server would wait for the next phase
            return {}

        async def send(message: dict[str, Any]) -> None:
            assert message["type"] == f"lifespan.{phase}.complete"
            raise _PhaseDone

        with contextlib.suppress(_PhaseDone):
            await self.app({"type": "lifespan"}, receive, send)


class _PhaseDone(Exception):
    pass


def _auth(token: str | None) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {token}")] if token else []
