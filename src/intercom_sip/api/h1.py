"""HTTP/1.1 by RFC 9112, the parts httptools leaves to us: which requests to refuse and
with what, the ASGI scope of a request, and an answer's head and framing written by hand.

Pure: bytes and values in, bytes and values out.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final, NamedTuple
from urllib.parse import unquote

from intercom_sip.api import http
from intercom_sip.api.http import HttpResponse, Scope

_ASGI: Final = {"version": "3.0", "spec_version": "2.3"}
_REASONS: Final = {status.value: status.phrase.encode() for status in HTTPStatus}
_VERSIONS: Final = frozenset({"1.1", "1.0"})
_NO_BODY: Final = frozenset({204, 304})  # and 1xx: RFC 9110 §6.4.1
_ABSOLUTE: Final = (b"http://", b"https://")
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
LAST_CHUNK: Final = b"0\r\n\r\n"


def _status_line(status: int) -> bytes:
    return b"HTTP/1.1 %d %b\r\n" % (status, _REASONS.get(status, b""))


def _header_lines(items: Iterable[tuple[bytes, bytes]]) -> bytes:
    return b"".join([name + b": " + value + b"\r\n" for name, value in items])


def raw_answer(answer: HttpResponse) -> bytes:
    """A whole answer that ends the connection (a refusal)."""
    headers = (*answer.headers, (b"connection", b"close"))
    return _status_line(answer.status) + _header_lines(headers) + b"\r\n" + answer.body


# The refusals, encoded once: each ends the connection after the answers before it.
BAD_REQUEST: Final = raw_answer(http.BAD_REQUEST)
HEAD_TOO_LARGE: Final = raw_answer(http.HEAD_TOO_LARGE)
NOT_IMPLEMENTED: Final = raw_answer(http.NOT_IMPLEMENTED)  # a transfer coding we lack
VERSION: Final = raw_answer(http.VERSION_NOT_SUPPORTED)

# llhttp's reasons that are not a plain 400.
_BY_REASON: Final = {"Invalid HTTP version": VERSION}


class Head(NamedTuple):
    """What the connection learned from a request's head, besides its scope (a tuple:
    one is made per request)."""

    keep_alive: bool
    head_only: bool  # HEAD: the answer's head without its body
    expect_continue: bool


def refusal_for(reason: str, transfer_coding: bytes | None) -> bytes:
    """The answer to a request httptools refused, from its reason."""
    if transfer_coding is not None and transfer_coding.lower() != b"chunked":
        return NOT_IMPLEMENTED  # RFC 9112 §6.1: a coding we do not understand
    return _BY_REASON.get(reason, BAD_REQUEST)


def check(version: str, hosts: int, transfer_coding: bytes | None) -> bytes | None:
    """The refusal a parsed head calls for, if any."""
    if version not in _VERSIONS:
        return VERSION  # RFC 9110 §15.6.6; llhttp lets HTTP/2.0 through
    if transfer_coding is not None and transfer_coding.lower() != b"chunked":
        return NOT_IMPLEMENTED
    if hosts > 1 or (hosts == 0 and version == "1.1"):
        return BAD_REQUEST  # RFC 9112 §3.2
    return None


def scope(
    method: str,
    target: bytes,
    version: str,
    headers: list[tuple[bytes, bytes]],
    *,
    client: tuple[str, int] | None,
    server: tuple[str, int] | None,
) -> Scope | None:
    """The ASGI scope of a request; None for a target that is not ASCII or whose
    absolute form has no authority."""
    if target.startswith(_ABSOLUTE):  # RFC 9112 §3.2.2: the target's authority is the host
        authority, _, rest = target.partition(b"://")[2].partition(b"/")
        if not authority:
            return None
        target = b"/" + rest
        headers = [item for item in headers if item[0] != b"host"]
        headers.append((b"host", authority))
    raw_path, _, query = target.partition(b"?")
    try:
        path = raw_path.decode("ascii")
    except UnicodeDecodeError:
        return None
    return {
        "type": "http",
        "asgi": _ASGI,
        "http_version": version,
        "server": server,
        "client": client,
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": unquote(path) if "%" in path else path,
        "raw_path": raw_path,
        "query_string": query,
        "headers": headers,
    }


@dataclass(slots=True)
class Framing:
    """How an answer's body goes on the wire, decided with its head."""

    chunked: bool  # HTTP/1.1 with no length: a stream
    remaining: int | None  # bytes of body still due by Content-Length; None: unbounded
    keep_alive: bool


_HEADS: dict[tuple[Any, ...], tuple[bytes, bool, int | None, bool] | None] = {}
_UNSEEN: Final[Any] = object()
HEADS_KEPT: Final = 256  # the answers' heads made last: most answers are made once, reused


def answer_head(
    status: int,
    headers: Iterable[tuple[Any, Any]],
    version: str,
    keep_alive: bool,
    whole: bytes | None,
) -> tuple[bytes, Framing] | None:
    """The head of an answer and its framing; `whole` is the body when it comes in one
    piece. None: the app's headers cannot be sent as they are."""
    if not isinstance(headers, tuple):
        return _answer_head(status, headers, version, keep_alive, whole)
    key = (status, headers, version, keep_alive, -1 if whole is None else len(whole))
    made = _HEADS.get(key, _UNSEEN)  # one lookup: a key hashes its headers anew each time
    if made is _UNSEEN:
        fresh = _answer_head(status, headers, version, keep_alive, whole)
        made = None if fresh is None else (fresh[0], *_fields(fresh[1]))
        if len(_HEADS) >= HEADS_KEPT:
            _HEADS.clear()
        _HEADS[key] = made
    if made is None:
        return None
    head, chunked, remaining, keep = made
    return head, Framing(chunked, remaining, keep)


def _fields(framing: Framing) -> tuple[bool, int | None, bool]:
    return framing.chunked, framing.remaining, framing.keep_alive


def _answer_head(
    status: int,
    headers: Iterable[tuple[Any, Any]],
    version: str,
    keep_alive: bool,
    whole: bytes | None,
) -> tuple[bytes, Framing] | None:
    items = [(bytes(name), bytes(value)) for name, value in headers]
    length = next((value for name, value in items if name.lower() == b"content-length"), None)
    bodiless = status < 200 or status in _NO_BODY
    framing = Framing(False, 0 if bodiless else None, keep_alive)
    if length is not None:
        if not length.isdigit():
            return None
        framing.remaining = 0 if bodiless else int(length)
    elif whole is not None and not bodiless:
        items.append((b"content-length", b"%d" % len(whole)))
        framing.remaining = len(whole)
    elif not bodiless and version == "1.1":
        items.append((b"transfer-encoding", b"chunked"))
        framing.chunked = True
    elif not bodiless:
        framing.keep_alive = False  # HTTP/1.0: the body ends with the connection
    if not framing.keep_alive:
        items.append((b"connection", b"close"))
    elif version == "1.0":
        items.append((b"connection", b"keep-alive"))
    lines = _header_lines(items)
    if lines.count(b"\n") != len(items) or lines.count(b"\r") != len(items):
        return None  # a header with CR or LF in it would split the answer
    return _status_line(status) + lines + b"\r\n", framing


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)
