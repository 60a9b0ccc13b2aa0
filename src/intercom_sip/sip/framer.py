"""Cutting a TCP/TLS byte stream into SIP messages (RFC 3261 §18.3), and the
RFC 5626 keep-alives: a CRLFCRLF ping and a CRLF pong. Pure, like h11's
receive_data()/next_event().
"""

import re
from dataclasses import dataclass
from typing import Final

from intercom_sip.sip.message import MAX_MESSAGE, ParseError

# Lines end in CRLF, and `$` under re.M matches only before the LF: hence the `\r?`.
_LENGTH = re.compile(
    rb"^(?:content-length|l)[ \t]*:[ \t]*(?:\r\n[ \t]+)?(\d{1,6})[ \t]*\r?$", re.I | re.M
)


@dataclass(frozen=True)
class Ping:
    """CRLFCRLF: answer with a Pong (CRLF)."""


@dataclass(frozen=True)
class Pong:
    """A lone CRLF: the answer to our ping."""


PING: Final = Ping()
PONG: Final = Pong()
Event = bytes | Ping | Pong | ParseError


class Framer:
    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_event(self) -> Event | None:
        """A whole message's bytes, a keep-alive, an error (then close), or None for more."""
        keepalive = self._keepalive()
        if keepalive is not None:
            return keepalive
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            too_long = len(self._buffer) > MAX_MESSAGE
            return ParseError(413, "Message Too Large") if too_long else None
        head = bytes(self._buffer[:end])
        match = _LENGTH.search(head)
        if match is None:
            return ParseError(400, "Missing Content-Length")
        total = end + 4 + int(match[1])
        if total > MAX_MESSAGE:
            return ParseError(413, "Message Too Large")
        if len(self._buffer) < total:
            return None
        message = bytes(self._buffer[:total])
        del self._buffer[:total]
        return message

    def _keepalive(self) -> Ping | Pong | None:
        if self._buffer.startswith(b"\r\n\r\n"):
            del self._buffer[:4]
            return PING
        if self._buffer.startswith(b"\r\n"):
            # A pong. A ping cut after its first CRLF reads as two pongs: the
            # registrar pings us rarely, and we are the one waiting for pongs.
            del self._buffer[:2]
            return PONG
        return None
