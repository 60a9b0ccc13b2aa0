"""The few pieces of HTTP the API needs, over raw ASGI: lean on purpose (see README)."""

import functools
import json
from collections.abc import Awaitable, Callable, MutableMapping
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
    content_type: bytes = b"application/json"


def json_response(status: int, value: object) -> Response:
    return Response(status, json.dumps(value).encode())


@functools.lru_cache(maxsize=512)  # messages never hold what a client sent: few of them
def error(status: int, message: str) -> Response:
    return json_response(status, {"error": message})


# The fixed answers, encoded once.
LOG_IN: Final = error(401, errors.LOG_IN)
NOT_FOUND: Final = error(404, errors.NOT_FOUND)
METHOD_NOT_ALLOWED: Final = error(405, errors.METHOD_NOT_ALLOWED)
TOO_LARGE: Final = error(413, errors.BODY_TOO_LARGE)
MISDIRECTED: Final = error(421, errors.MISDIRECTED)
INTERNAL: Final = error(500, errors.INTERNAL)


async def send_response(send: Send, response: Response) -> None:
    headers = [
        (b"content-type", response.content_type),
        (b"cache-control", b"no-store"),
        (b"content-length", str(len(response.body)).encode()),
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def read_body(scope: Scope, receive: Receive, limit: int = MAX_BODY) -> bytes | None:
    """The whole body, or None as soon as it is known to exceed `limit` bytes."""
    for name, value in scope["headers"]:
        if name == b"content-length" and (not value.isdigit() or int(value) > limit):
            return None  # httptools refuses a non-numeric length before we get here
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client left; nobody reads the answer
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
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
