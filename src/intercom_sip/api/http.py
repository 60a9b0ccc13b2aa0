"""The few pieces of HTTP the API needs, over raw ASGI: lean on purpose (see README)."""

import asyncio
import contextlib
import functools
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from intercom_sip import errors

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY: Final = 65536


class BodyStream(Protocol):
    """The rest of a streamed answer, piece by piece (the live events)."""

    async def next(self) -> bytes | None:
        """The next piece; None at the end."""

    def end(self) -> None:
        """Stop: the client left or the server stops; `next` then answers None."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    stream: BodyStream | None = None  # more body after `body`, until it ends


Headers = tuple[tuple[bytes, bytes], ...]


def response(status: int, body: bytes, extra: Headers = ()) -> HttpResponse:
    """A JSON answer with its headers made once: most answers are made once and reused."""
    headers = (
        (b"content-type", b"application/json"),
        (b"cache-control", b"no-store"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    )
    return HttpResponse(status, body, headers)


def json_response(status: int, value: object, extra: Headers = ()) -> HttpResponse:
    return response(status, json.dumps(value).encode(), extra)


@functools.lru_cache(maxsize=512)  # messages never hold what a client sent: few of them
def error(status: int, message: str, extra: Headers = ()) -> HttpResponse:
    return json_response(status, {"error": message}, extra)


def method_not_allowed(methods: Iterable[str]) -> HttpResponse:
    """405 with `Allow` (RFC 9110 §15.5.6)."""
    allow = ", ".join(sorted(methods)).encode()
    return error(405, errors.METHOD_NOT_ALLOWED, ((b"allow", allow),))


# The fixed answers, encoded once.
BAD_REQUEST: Final = error(400, errors.BAD_REQUEST)
HEAD_TOO_LARGE: Final = error(431, errors.HEAD_TOO_LARGE)
NOT_IMPLEMENTED: Final = error(501, errors.NOT_IMPLEMENTED)
VERSION_NOT_SUPPORTED: Final = error(505, errors.VERSION_NOT_SUPPORTED)
LOG_IN: Final = error(401, errors.LOG_IN, ((b"www-authenticate", b"Bearer"),))  # RFC 6750
NOT_FOUND: Final = error(404, errors.NOT_FOUND)
TOO_LARGE: Final = error(413, errors.BODY_TOO_LARGE)
MISDIRECTED: Final = error(421, errors.MISDIRECTED)
INTERNAL: Final = error(500, errors.INTERNAL)


async def send_response(send: Send, answer: HttpResponse, receive: Receive | None = None) -> None:
    start = {"type": "http.response.start", "status": answer.status, "headers": answer.headers}
    await send(start)
    if answer.stream is None or receive is None:
        await send({"type": "http.response.body", "body": answer.body})
        return
    await _send_stream(send, receive, answer.body, answer.stream)


async def _send_stream(send: Send, receive: Receive, first: bytes, stream: BodyStream) -> None:
    """Piece by piece until the stream ends or the server says the client is gone
    (`http.disconnect`, also sent when the server stops: then the end is still written)."""
    watch = asyncio.ensure_future(_disconnected(receive))
    watch.add_done_callback(lambda _: stream.end())
    try:
        piece: bytes | None = first
        while piece is not None:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            piece = await stream.next()
        await send({"type": "http.response.body", "body": b""})
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        stream.end()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass  # the rest of a body nobody asked for


async def read_body(scope: Scope, receive: Receive, limit: int = MAX_BODY) -> bytes | None:
    """The whole body, or None as soon as it is known to exceed `limit` bytes."""
    for name, value in scope["headers"]:
        if name == b"content-length" and (not value.isdigit() or int(value) > limit):
            return None  # the server refuses a non-numeric length before we get here
    message = await receive()
    if not message.get("more_body", False):  # the common case: all in one message
        first: bytes = message.get("body", b"")
        return first if len(first) <= limit else None
    chunks = [message.get("body", b"")]
    size = len(chunks[0])
    while message.get("more_body", False):
        message = await receive()
        if message["type"] != "http.request":
            break  # the client left; nobody reads the answer
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            return None
    return b"".join(chunks)


def bearer_token(value: bytes) -> str | None:
    """`Bearer <token>` (the scheme in any case) -> the token; None for anything else."""
    scheme, _, token = value.partition(b" ")
    if scheme.lower() != b"bearer" or not token or b" " in token:
        return None
    try:
        return token.decode("ascii")
    except UnicodeDecodeError:
        return None
