"""SDP (RFC 8866, formerly RFC 4566): parse and build session descriptions, pure.

Parsing never raises: a malformed description is an `SdpError` value (the INVITE that
carried it is answered 400, or 488 by the offer/answer rules). Work is bounded for any
input: the size, the number of lines and of media sections are capped. Attributes may
carry SRTP keys (RFC 4568 `a=crypto`), so they stay out of every repr.
"""

import re
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Final

MAX_SDP: Final = 16384
MAX_LINES: Final = 256
MAX_MEDIA: Final = 16

TOO_LARGE: Final = "SDP too large"
TOO_MANY_LINES: Final = "SDP has too many lines"
TOO_MANY_MEDIA: Final = "SDP has too many media sections"
NOT_TEXT: Final = "SDP is not UTF-8 text"
BAD_LINE: Final = "malformed SDP line"
NO_VERSION: Final = "SDP does not start with v=0"
NO_ORIGIN: Final = "SDP has no o= line"
BAD_ORIGIN: Final = "malformed o= line"
BAD_CONNECTION: Final = "malformed c= line"
BAD_MEDIA: Final = "malformed m= line"

_LINE = re.compile(r"([a-z])=(.*)")
_KNOWN = frozenset("vosiuepcbtrzkam")  # RFC 8866 §5's types; anything else is refused
_WORD = r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+"
_ORIGIN = re.compile(
    rf"(\S+) ([0-9]{{1,20}}) ([0-9]{{1,20}}) IN (IP4|IP6) ({_WORD}|[0-9a-fA-F:.]+)"
)
_CONNECTION = re.compile(r"IN (IP4|IP6) ([^\s/]+)(?:/[0-9]+){0,2}")
_MEDIA = re.compile(rf"({_WORD}) ([0-9]{{1,5}})(?:/[0-9]+)? ({_WORD}(?:/{_WORD})*)((?: \S+)+)")


@dataclass(frozen=True)
class SdpError:
    reason: str


@dataclass(frozen=True)
class Origin:
    username: str
    session_id: int
    version: int
    address_type: str  # IP4 or IP6
    address: str


@dataclass(frozen=True)
class ConnectionData:
    address_type: str
    address: str


Attribute = tuple[str, str | None]  # a=name:value, or a=name (a flag)


@dataclass(frozen=True)
class Media:
    kind: str  # audio, video...
    port: int
    proto: str  # RTP/AVP, RTP/SAVP...
    formats: tuple[str, ...]
    connection: ConnectionData | None = None
    attributes: tuple[Attribute, ...] = field(default=(), repr=False)

    def values(self, name: str) -> list[str]:
        """The values of the attributes called `name`, in order."""
        return [value for key, value in self.attributes if key == name and value is not None]

    def has(self, name: str) -> bool:
        return any(key == name for key, _ in self.attributes)


@dataclass(frozen=True)
class SessionDescription:
    origin: Origin
    name: str = "-"
    connection: ConnectionData | None = None
    attributes: tuple[Attribute, ...] = field(default=(), repr=False)
    media: tuple[Media, ...] = ()

    def with_version(self, version: int) -> "SessionDescription":
        return replace(self, origin=replace(self.origin, version=version))


def parse(body: bytes) -> SessionDescription | SdpError:
    """An SDP body -> its description, or why it is refused."""
    fields = _fields(body)
    if isinstance(fields, SdpError):
        return fields
    if not fields or fields[0] != ("v", "0"):
        return SdpError(NO_VERSION)
    return _session(fields[1:])


def _fields(body: bytes) -> list[tuple[str, str]] | SdpError:
    """The (type, value) lines, within the bounds; blank lines and CRs are dropped."""
    if len(body) > MAX_SDP:
        return SdpError(TOO_LARGE)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return SdpError(NOT_TEXT)
    lines = [line.removesuffix("\r") for line in text.split("\n") if line.strip()]
    if len(lines) > MAX_LINES:
        return SdpError(TOO_MANY_LINES)
    if sum(line.startswith("m=") for line in lines) > MAX_MEDIA:
        return SdpError(TOO_MANY_MEDIA)
    matches = [_LINE.fullmatch(line) for line in lines]
    if any(match is None or match[1] not in _KNOWN for match in matches):
        return SdpError(BAD_LINE)
    return [(match[1], match[2]) for match in matches if match is not None]


def _session(fields: list[tuple[str, str]]) -> SessionDescription | SdpError:
    starts = [i for i, (kind, _) in enumerate(fields) if kind == "m"] + [len(fields)]
    head = fields[: starts[0]]
    origin = _origin(next((value for kind, value in head if kind == "o"), None))
    if isinstance(origin, SdpError):
        return origin
    connection = _connection(head)
    if isinstance(connection, SdpError):
        return connection
    media = [_media(fields[start:end]) for start, end in pairwise(starts)]
    error = next((section for section in media if isinstance(section, SdpError)), None)
    if error is not None:
        return error
    name = next((value for kind, value in head if kind == "s"), "-")
    attributes = tuple(_attribute(value) for kind, value in head if kind == "a")
    sections = tuple(section for section in media if isinstance(section, Media))
    return SessionDescription(origin, name, connection, attributes, sections)


def _origin(value: str | None) -> Origin | SdpError:
    if value is None:
        return SdpError(NO_ORIGIN)
    match = _ORIGIN.fullmatch(value)
    if match is None:
        return SdpError(BAD_ORIGIN)
    return Origin(match[1], int(match[2]), int(match[3]), match[4], match[5])


def _connection(fields: list[tuple[str, str]]) -> ConnectionData | SdpError | None:
    value = next((value for kind, value in fields if kind == "c"), None)
    if value is None:
        return None
    match = _CONNECTION.fullmatch(value)
    return SdpError(BAD_CONNECTION) if match is None else ConnectionData(match[1], match[2])


def _media(fields: list[tuple[str, str]]) -> Media | SdpError:
    match = _MEDIA.fullmatch(fields[0][1])
    if match is None or int(match[2]) > 65535:
        return SdpError(BAD_MEDIA)
    connection = _connection(fields[1:])
    if isinstance(connection, SdpError):
        return connection
    attributes = tuple(_attribute(value) for kind, value in fields[1:] if kind == "a")
    formats = tuple(match[4].split())
    return Media(match[1], int(match[2]), match[3], formats, connection, attributes)


def _attribute(value: str) -> Attribute:
    name, colon, rest = value.partition(":")
    return (name, rest if colon else None)


def build(session: SessionDescription) -> bytes:
    """The description as a body: CRLF line ends, the lines in RFC 8866's order."""
    o = session.origin
    lines = [
        "v=0",
        f"o={o.username} {o.session_id} {o.version} IN {o.address_type} {o.address}",
        f"s={session.name}",
        *_connection_lines(session.connection),
        "t=0 0",
        *_attribute_lines(session.attributes),
    ]
    for media in session.media:
        formats = " ".join(media.formats)
        lines.append(f"m={media.kind} {media.port} {media.proto} {formats}")
        lines += _connection_lines(media.connection) + _attribute_lines(media.attributes)
    return "".join(line + "\r\n" for line in lines).encode()


def _connection_lines(connection: ConnectionData | None) -> list[str]:
    if connection is None:
        return []
    return [f"c=IN {connection.address_type} {connection.address}"]


def _attribute_lines(attributes: tuple[Attribute, ...]) -> list[str]:
    return [f"a={name}" if value is None else f"a={name}:{value}" for name, value in attributes]
