"""SIP messages (RFC 3261 §7, §18.3, §20, §25): parse and build, pure.

Parsing never raises: a malformed message is a `ParseError` value carrying the
status a server answers it with. Work is bounded for any input: the size of a
message, the number of its headers and the length of a line are capped.
"""

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from intercom_sip.loglimit import escaped

MAX_MESSAGE: Final = 65536
MAX_HEADERS: Final = 128
MAX_LINE: Final = 8192
SIP_VERSION: Final = "SIP/2.0"

COMPACT: Final = {
    "i": "Call-ID",
    "v": "Via",
    "f": "From",
    "t": "To",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
    "o": "Event",
    "r": "Refer-To",
    "u": "Allow-Events",
    "x": "Session-Expires",
}
# The spelling we use for the headers we know, whatever case arrived.
CANONICAL: Final = {
    name.lower(): name
    for name in (
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Max-Forwards",
        "Expires",
        "Min-Expires",
        "WWW-Authenticate",
        "Proxy-Authenticate",
        "Authorization",
        "Proxy-Authorization",
        "Content-Length",
        "Content-Type",
        "User-Agent",
        "Allow",
        "Supported",
        "Require",
        "Record-Route",
        "Route",
        "Server",
        "Retry-After",
        "Event",
    )
} | {full.lower(): full for full in COMPACT.values()}
# Headers whose values may be lists joined by commas (RFC 3261 §7.3.1).
LIST_HEADERS: Final = frozenset(
    {"Via", "Contact", "Route", "Record-Route", "Allow", "Supported", "Require"}
)

_WORD = r"[A-Za-z0-9\-.!%*_+`'~]+"
_REQUEST_LINE = re.compile(rf"({_WORD}) (\S+) (SIP/\d+\.\d+)")
_STATUS_LINE = re.compile(r"(SIP/\d+\.\d+) ([1-6][0-9]{2}) (.*)")
_HEADER_NAME = re.compile(_WORD)
_FOLD = re.compile(r"\r?\n[ \t]+")
_DIGITS = re.compile(r"[0-9]+")  # not str.isdigit(): "²" passes that and int() refuses it


@dataclass(frozen=True)
class ParseError:
    """Why a message was refused, and the status a server answers a request with."""

    status: int
    reason: str


@dataclass(frozen=True)
class Headers:
    """Header fields in order; names canonical, lookups case-insensitive."""

    fields: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str | None:
        wanted = canonical(name).lower()
        return next((value for key, value in self.fields if key.lower() == wanted), None)

    def get_all(self, name: str) -> list[str]:
        """Every value, list headers split at top-level commas."""
        wanted = canonical(name)
        values = [value for key, value in self.fields if key.lower() == wanted.lower()]
        if wanted in LIST_HEADERS:
            return [part for value in values for part in split_list(value)]
        return values

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.fields)


@dataclass(frozen=True)
class Request:
    method: str
    uri: str
    headers: Headers
    body: bytes = b""


@dataclass(frozen=True)
class Response:
    code: int
    reason: str
    headers: Headers
    body: bytes = b""


Message = Request | Response


def canonical(name: str) -> str:
    lower = name.lower()
    if lower in COMPACT:
        return COMPACT[lower]
    return CANONICAL.get(lower, name)


# --- parsing ---------------------------------------------------------------------------


def parse(data: bytes, stream: bool = False) -> Message | ParseError:
    """One whole message. On a datagram, octets past Content-Length are dropped
    (RFC 3261 §18.3); on a stream the framer has cut it to size already."""
    if len(data) > MAX_MESSAGE:
        return ParseError(413, "Message Too Large")
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, rest = data.partition(b"\n\n")  # bare LF, tolerated (RFC 3261 §7.5)
    if not sep:
        return ParseError(400, "No end of headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return ParseError(400, "Headers are not UTF-8")
    lines = _FOLD.sub(" ", text).replace("\r\n", "\n").split("\n")
    start = lines[0]
    headers = _parse_headers(lines[1:])
    if isinstance(headers, ParseError):
        return headers
    body = _body(headers, rest, stream)
    if isinstance(body, ParseError):
        return body
    return _start_line(start, headers, body)


def _parse_headers(lines: list[str]) -> Headers | ParseError:
    if len(lines) > MAX_HEADERS:
        return ParseError(400, "Too many headers")
    fields = []
    for line in lines:
        if len(line) > MAX_LINE:
            return ParseError(400, "Header line too long")
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not _HEADER_NAME.fullmatch(name):
            return ParseError(400, "Malformed header")
        fields.append((canonical(name), value.strip(" \t")))
    return Headers(tuple(fields))


def _body(headers: Headers, rest: bytes, stream: bool) -> bytes | ParseError:
    lengths = {value for key, value in headers if key == "Content-Length"}
    if not lengths:
        return ParseError(400, "Missing Content-Length") if stream else rest
    if len(lengths) > 1:
        return ParseError(400, "Conflicting Content-Length")
    text = lengths.pop()
    if not _DIGITS.fullmatch(text) or len(text) > 6:
        return ParseError(400, "Bad Content-Length")
    length = int(text)
    if length > len(rest):
        return ParseError(400, "Content-Length larger than message")
    return rest[:length]


def _start_line(line: str, headers: Headers, body: bytes) -> Message | ParseError:
    status = _STATUS_LINE.fullmatch(line)
    if status:
        if status[1] != SIP_VERSION:
            return ParseError(505, "Version Not Supported")
        return _checked(Response(int(status[2]), status[3], headers, body))
    request = _REQUEST_LINE.fullmatch(line)
    if request is None:
        return ParseError(400, "Malformed start line")
    if request[3] != SIP_VERSION:
        return ParseError(505, "Version Not Supported")
    if request[2].startswith("<"):
        return ParseError(400, "Request-URI in angle brackets")
    return _checked(Request(request[1], request[2], headers, body))


def _checked(message: Message) -> Message | ParseError:
    """The headers every message needs (RFC 3261 §8.1.1), and a sane CSeq."""
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        if message.headers.get(name) is None:
            return ParseError(400, f"Missing {name}")
    cseq = parse_cseq(message.headers.get("CSeq") or "")
    if cseq is None:
        return ParseError(400, "Bad CSeq")
    if isinstance(message, Request) and cseq[1] != message.method:
        return ParseError(400, "CSeq method does not match")
    return message


def parse_cseq(value: str) -> tuple[int, str] | None:
    number, _, method = value.strip().partition(" ")
    method = method.strip()
    if not _DIGITS.fullmatch(number) or len(number) > 10 or int(number) >= 2**31:
        return None
    return (int(number), method) if _HEADER_NAME.fullmatch(method) else None


# --- the parts a UA reads --------------------------------------------------------------


def split_list(value: str) -> list[str]:
    """Split at commas outside quotes and <...> (RFC 3261 §7.3.1)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = angle = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"' and not angle:
            quoted = not quoted
        elif not quoted and char in "<>":
            angle = char == "<"
        elif char == "," and not quoted and not angle:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def parse_params(text: str) -> dict[str, str]:
    """`;a=1;b;c="x;y"` -> {"a": "1", "b": "", "c": "x;y"}; names lower-cased."""
    params: dict[str, str] = {}
    for item in split_outside_quotes(text, ";"):
        name, _, value = item.partition("=")
        if name.strip():
            params[name.strip().lower()] = unquote(value.strip())
    return params


def split_outside_quotes(text: str, sep: str) -> list[str]:
    """Split at `sep` outside quoted strings (with their backslash escapes)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == sep and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class NameAddr:
    """From, To, Contact: `"display" <uri>;params` or a bare `uri;params`."""

    uri: str
    display: str = ""
    params: dict[str, str] = field(default_factory=dict)


def parse_name_addr(value: str) -> NameAddr | None:
    value = value.strip()
    display, rest = _display_name(value)
    if display is None:
        return None
    if rest.startswith("<"):
        uri, closed, params = rest[1:].partition(">")
        return NameAddr(uri, display, parse_params(params)) if closed and uri else None
    uri, _, params = value.partition(";")  # addr-spec: its parameters are the header's
    return NameAddr(uri.rstrip(" \t"), "", parse_params(params)) if uri.strip() else None


def _display_name(value: str) -> tuple[str | None, str]:
    """`"a \\"b\\"" <...` or `token token <...` -> (display, the rest from the `<`);
    no `<` -> ("", value); a broken quoted string -> (None, "")."""
    if not value.startswith('"'):
        display, angle, rest = value.partition("<")
        return (display.strip(), angle + rest) if angle else ("", value)
    escaped = False
    for end, char in enumerate(value[1:], 1):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            rest = value[end + 1 :].lstrip(" \t")
            return (unquote(value[: end + 1]), rest) if rest.startswith("<") else (None, "")
    return None, ""


@dataclass(frozen=True)
class Via:
    transport: str
    host: str
    port: int | None
    params: dict[str, str]


_VIA = re.compile(r"SIP\s*/\s*2\.0\s*/\s*([A-Za-z]+)\s+(\[[^\]]+\]|[^\s;:]+)(?::(\d{1,5}))?")


def parse_via(value: str) -> Via | None:
    match = _VIA.match(value.strip())
    if match is None:
        return None
    params = parse_params(value.strip()[match.end() :].lstrip(" ").removeprefix(";"))
    return Via(match[1].upper(), match[2], int(match[3]) if match[3] else None, params)


# --- tracing ---------------------------------------------------------------------------

_CREDENTIALS = re.compile(rb"^((?:proxy-)?authorization[ \t]*:)[^\r\n]*", re.I | re.M)


# RFC 4568 §6.1: `a=crypto:<tag> <suite> inline:<key||salt>[|lifetime][|mki] ...`
_SRTP_KEYS = re.compile(rb"(inline:)[^\s;]*", re.I)


def redacted(data: bytes, token: str = "") -> str:
    """A message as text for a debug trace, its credentials, SRTP keys and our Contact's
    `token` (what a forger needs to ring us, §6.9) replaced, and control characters
    escaped in each of its lines (so the trace's lines are ours)."""
    data = _SRTP_KEYS.sub(rb"\1<redacted>", _CREDENTIALS.sub(rb"\1 <redacted>", data))
    if token:
        data = data.replace(token.encode(), b"<token>")
    lines = data.decode("utf-8", "replace").rstrip("\r\n").split("\n")
    return "\n".join(escaped(line.removesuffix("\r")) for line in lines)


# --- building --------------------------------------------------------------------------

# RFC 3261 §25.1: unreserved and user-unreserved characters stay; the rest is %XX.
_USER_SAFE: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()&=+$,;?/"
)


def escape_user(user: str) -> str:
    return "".join(
        char if char in _USER_SAFE else "".join(f"%{b:02X}" for b in char.encode())
        for char in user
    )


def build(start: str, headers: Iterable[tuple[str, str]], body: bytes = b"") -> bytes:
    """A whole message; Content-Length is computed, never taken from `headers`."""
    lines = [start]
    lines += [f"{k}: {v}" for k, v in headers if canonical(k) != "Content-Length"]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def request_bytes(request: Request) -> bytes:
    return build(f"{request.method} {request.uri} {SIP_VERSION}", request.headers, request.body)


def response_bytes(response: Response) -> bytes:
    return build(
        f"{SIP_VERSION} {response.code} {response.reason}", response.headers, response.body
    )


def response_to(
    request: Request,
    code: int,
    reason: str,
    to_tag: str = "",
    extra: Iterable[tuple[str, str]] = (),
) -> Response:
    """A response copying Via, From, To, Call-ID, CSeq (RFC 3261 §8.2.6.2)."""
    copied = [(k, v) for k, v in request.headers if k in ("Via", "From", "To", "Call-ID", "CSeq")]
    if to_tag:
        copied = [
            (k, v + f";tag={to_tag}" if k == "To" and ";tag=" not in v else v) for k, v in copied
        ]
    return Response(code, reason, Headers((*copied, *extra)))
