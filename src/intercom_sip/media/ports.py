"""RTP ports: even ports of a configured range, bound on the SIP host address, leased.

RTP takes an even port and RTCP the odd one above it (RFC 3550 §11); both are bound.
A lease holds the bound sockets until a media session takes them, and gives the number
back when released. The port is picked at random among the free even ones (CONTRACT
§6.7), as Asterisk and rtpengine do: a port handed out in order is one a stranger can
guess and spray before the call starts.
"""

import errno
import ipaddress
import random
import re
import socket
from dataclasses import dataclass
from typing import Final

from . import stamps

MIN_PORT: Final = 1024  # below are privileged and well-known services
MAX_PORT: Final = 65534  # room for RTCP's odd port above the last even one

BAD_RANGE: Final = (
    f"the RTP port range must be FIRST-LAST, {MIN_PORT} <= FIRST <= LAST <= {MAX_PORT}"
)
NO_EVEN_PORT: Final = "the RTP port range holds no even port"
EXHAUSTED: Final = "no free RTP port in the range"
NOT_AN_ADDRESS: Final = "the RTP host is not an IP address"

# A port someone else holds: try the next one. Any other bind error is the host's.
_TAKEN: Final = frozenset({errno.EADDRINUSE, errno.EACCES})
_RANGE = re.compile(r"([0-9]{1,5})-([0-9]{1,5})")


@dataclass(frozen=True)
class PortError:
    """Why no RTP port could be had; `message` is fixed text, fit for a log."""

    message: str


@dataclass(frozen=True)
class PortRange:
    """A service option: the ports RTP may use, both ends included."""

    first: int
    last: int

    @property
    def even(self) -> range:
        return range(self.first + self.first % 2, self.last + 1, 2)


def parse_range(text: str) -> PortRange | PortError:
    """`10000-20000` -> the range, or why it cannot be one."""
    match = _RANGE.fullmatch(text.strip())
    if match is None:
        return PortError(BAD_RANGE)
    ports = PortRange(int(match[1]), int(match[2]))
    if not MIN_PORT <= ports.first <= ports.last <= MAX_PORT:
        return PortError(BAD_RANGE)
    return ports if ports.even else PortError(NO_EVEN_PORT)


class RtpPort:
    """One leased port and its bound socket, until the session that uses it ends."""

    def __init__(
        self,
        pool: "PortPool",
        port: int,
        sock: socket.socket,
        rtcp: socket.socket | None = None,
    ) -> None:
        self.port = port
        self._pool: PortPool | None = pool
        self._sock: socket.socket | None = sock
        self._rtcp: socket.socket | None = rtcp

    def __repr__(self) -> str:
        return f"RtpPort({self.port}, released={self._pool is None})"

    def detach(self) -> socket.socket:
        """The bound socket, for a transport that owns (and closes) it from now on."""
        if self._sock is None:
            raise ValueError("the RTP socket is already detached or released")
        sock, self._sock = self._sock, None
        return sock

    def detach_rtcp(self) -> socket.socket | None:
        """The bound RTCP socket (port + 1), for the session that owns it from now on."""
        sock, self._rtcp = self._rtcp, None
        return sock

    def release(self) -> None:
        """Give the port back (closing the sockets no transport took); idempotent."""
        for sock in (self._sock, self._rtcp):
            if sock is not None:
                sock.close()
        self._sock = self._rtcp = None
        if self._pool is not None:
            self._pool.give_back(self.port)
            self._pool = None


class PortPool:
    """Leases even ports of a range; refuses when every one is leased or held by others."""

    def __init__(self, ports: PortRange, rng: random.Random | None = None) -> None:
        self.ports = ports
        self._leased: set[int] = set()
        self._rng = rng or random.SystemRandom()
        stamps.keep_on()  # before any call: arrival times must be true from the first one

    @property
    def leased(self) -> int:
        return len(self._leased)

    def take(self, host: str) -> RtpPort | PortError:
        """A port bound on `host` (an IP address), or why there is none."""
        try:
            family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        except ValueError:
            return PortError(NOT_AN_ADDRESS)
        free = [port for port in self.ports.even if port not in self._leased]
        self._rng.shuffle(free)
        for port in free:
            bound = _bind_pair(family, host, port)
            if isinstance(bound, PortError):
                return bound
            if bound is not None:
                self._leased.add(port)
                return RtpPort(self, port, *bound)
        return PortError(EXHAUSTED)

    def give_back(self, port: int) -> None:
        self._leased.discard(port)


def _bind_pair(
    family: int, host: str, port: int
) -> tuple[socket.socket, socket.socket] | PortError | None:
    """RTP's socket and RTCP's (port + 1); None when either port is taken."""
    rtp = _bind(family, host, port)
    if rtp is None or isinstance(rtp, PortError):
        return rtp
    rtcp = _bind(family, host, port + 1)
    if isinstance(rtcp, socket.socket):
        return rtp, rtcp
    rtp.close()
    return rtcp


def _bind(family: int, host: str, port: int) -> socket.socket | PortError | None:
    """The bound socket; None when the port is taken; an error when the host is wrong."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno in _TAKEN:
            return None
        return PortError(f"cannot bind RTP on {host}: {error.strerror or error}")
    sock.setblocking(False)
    return sock
