"""The attacker's sockets: many connections at once, writes that never read, and a watch
on which of them the service has closed. Non-blocking, epoll, every loop bounded in time."""

import errno
import resource
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

CONNECT_WAIT = 5.0


def raise_file_limit() -> int:
    """The bench's own soft limit up to its hard limit: thousands of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def connect_many(port: int, count: int, source: str = "127.0.0.1") -> list[socket.socket]:
    """Up to `count` connections to 127.0.0.1:port; those not made within CONNECT_WAIT
    (a full accept queue drops the SYN) are given up."""
    selector = selectors.DefaultSelector()
    pending: list[socket.socket] = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.bind((source, 0))
        if sock.connect_ex(("127.0.0.1", port)) not in (0, errno.EINPROGRESS):
            sock.close()
            continue
        selector.register(sock, selectors.EVENT_WRITE, sock)
        pending.append(sock)
    made: list[socket.socket] = []
    deadline = time.monotonic() + CONNECT_WAIT
    while selector.get_map() and time.monotonic() < deadline:
        for key, _ in selector.select(0.2):
            sock = key.data
            selector.unregister(sock)
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                made.append(sock)
            else:
                sock.close()
    for key in list(selector.get_map().values()):
        key.data.close()
    selector.close()
    return made


@dataclass
class Pumped:
    sent: int = 0  # bytes
    opened: int = 0  # connections
    dropped: int = 0  # connections the service closed on us
    first_drop: float | None = None  # seconds after the start


def pump_for(
    port: int, connections: int, payload: bytes, seconds: float, stop: threading.Event
) -> Pumped:
    """`pump` on `connections` connections, opened again whenever the service has
    dropped them all, as an attacker would, until `seconds` pass."""
    total = Pumped()
    started = time.monotonic()
    while not stop.is_set() and (left := seconds - (time.monotonic() - started)) > 0:
        socks = connect_many(port, connections)
        try:
            round_ = pump(socks, payload, left, stop)
        finally:
            for sock in socks:
                sock.close()
        if total.first_drop is None and round_.first_drop is not None:
            total.first_drop = seconds - left + round_.first_drop
        total.sent += round_.sent
        total.opened += len(socks)
        total.dropped += round_.dropped
        stop.wait(0.05)  # the service refuses us at once: do not spin
    return total


def pump(
    socks: list[socket.socket], payload: bytes, seconds: float, stop: threading.Event
) -> Pumped:
    """Write `payload` over and over on every socket, never reading, until `seconds`
    pass or `stop` is set. A write the service does not take waits (back-pressure);
    a write that fails means the service dropped the connection."""
    result = Pumped()
    started = time.monotonic()
    selector = selectors.DefaultSelector()
    offsets = {}
    for sock in socks:
        selector.register(sock, selectors.EVENT_WRITE, sock)
        offsets[sock] = 0
    while selector.get_map() and not stop.is_set() and time.monotonic() - started < seconds:
        for key, _ in selector.select(0.1):
            sock = key.data
            try:
                offset = offsets[sock]
                sent = sock.send(memoryview(payload)[offset:])
            except BlockingIOError:
                continue
            except OSError:
                selector.unregister(sock)
                result.dropped += 1
                if result.first_drop is None:
                    result.first_drop = time.monotonic() - started
                continue
            result.sent += sent
            offsets[sock] = (offset + sent) % len(payload)
    selector.close()
    return result


@dataclass
class Conn:
    sock: socket.socket
    opened: float
    closed: float | None = None
    answer: bytes = b""  # the start of what the service sent, if anything


@dataclass
class Held:
    """Connections whose closing by the service we watch for."""

    conns: list[Conn] = field(default_factory=list)
    selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)

    def add(self, socks: list[socket.socket], opened: float) -> list[Conn]:
        """`opened`: when the connecting began (the strict reading of "held")."""
        added = [Conn(sock, opened) for sock in socks]
        for conn in added:
            self.selector.register(conn.sock, selectors.EVENT_READ, conn)
        self.conns += added
        return added

    def send(self, conn: Conn, data: bytes) -> None:
        """A trickle: a failed or refused write means the service closed it."""
        if conn.closed is not None:
            return
        try:
            conn.sock.send(data)
        except BlockingIOError:
            pass
        except OSError:
            self._closed(conn)

    def poll(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            conn = key.data
            assert isinstance(conn, Conn)
            for _ in range(16):  # bounded: what we read is only looked at, not kept
                try:
                    data = conn.sock.recv(65536)
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                if not data:
                    self._closed(conn)
                    break
                conn.answer = (conn.answer + data)[:64]

    def _closed(self, conn: Conn) -> None:
        conn.closed = time.monotonic()
        self.selector.unregister(conn.sock)

    def held_longer_than(self, seconds: float, now: float) -> int:
        return sum(
            1
            for c in self.conns
            if (c.closed if c.closed is not None else now) - c.opened > seconds
        )

    def close(self) -> None:
        for conn in self.conns:
            conn.sock.close()
        self.selector.close()
