"""The few pieces of HTTP the API needs, over raw ASGI: lean on purpose (see README)."""

import functools
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, Final

from intercom_sip import errors

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY: Final = 65536


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...]


Headers = tuple[tuple[bytes, bytes], ...]


def response(status: int, body: bytes, extra: Headers = ()) -> Response:
    """A JSON answer with its headers made once: most answers are made once and reused."""
    headers = (
        (b"content-type", b"application/json"),
        (b"cache-control", b"no-store"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    )
    return Response(status, body, headers)


def json_response(status: int, value: object, extra: Headers = ()) -> Response:
    return response(status, json.dumps(value).encode(), extra)


@functools.lru_cache(maxsize=512)  # messages never hold what a client sent: few of them
def error(status: int, message: str, extra: Headers = ()) -> Response:
    return json_response(status, {"error": message}, extra)


def method_not_allowed(methods: Iterable[str]) -> Response:
    """405 with `Allow` (RFC 9110 §15.5.6)."""
    allow = ", ".join(sorted(methods)).encode()
    return error(405, errors.METHOD_NOT_ALLOWED, ((b"allow", allow),))


# The fixed answers, encoded once.
BAD_REQUEST: Final = error(400, errors.BAD_REQUEST)
HEAD_TOO_LARGE: Final = error(431, errors.HEAD_TOO_LARGE)
LOG_IN: Final = error(401, errors.LOG_IN, ((b"www-authenticate", b"Bearer"),))  # RFC 6750
NOT_FOUND: Final = error(404, errors.NOT_FOUND)
TOO_LARGE: Final = error(413, errors.BODY_TOO_LARGE)
MISDIRECTED: Final = error(421, errors.MISDIRECTED)
INTERNAL: Final = error(500, errors.INTERNAL)


async def send_response(send: Send, answer: Response) -> None:
    start = {"type": "http.response.start", "status": answer.status, "headers": answer.headers}
    await send(start)
    await send({"type": "http.response.body", "body": answer.body})


async def read_body(scope: Scope, receive: Receive, limit: int = MAX_BODY) -> bytes | None:
    """The whole body, or None as soon as it is known to exceed `limit` bytes."""
    for name, value in scope["headers"]:
        if name == b"content-length" and (not value.isdigit() or int(value) > limit):
            return None  # h11 refuses a non-numeric length before we get here
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
