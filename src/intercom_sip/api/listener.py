"""Accepts HTTP connections up to a cap, closes those that wait too long, stops gracefully.

Our own accept loop rather than asyncio's `create_server`: at the cap or when the process
runs out of file descriptors it must choose whom to close (the longest-idle connection, one
with no request in progress), and asyncio would log a traceback for every failed accept.
"""

import asyncio
import contextlib
import errno
import logging
import os
import resource
import socket
from collections.abc import Coroutine
from typing import Any, Final

from intercom_sip.api.connection import AsgiApp, Connection, Limits
from intercom_sip.loglimit import LogLimit

log = logging.getLogger(__name__)

FD_RESERVE: Final = 64  # the store, the SIP sockets, the log, the loop's own
DEFAULT_MAX_CONNECTIONS: Final = 1024
ACCEPT_BATCH: Final = 64
ACCEPT_RETRY: Final = 0.5  # seconds without accepting once out of descriptors, none idle
_OUT_OF_RESOURCES: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def connection_cap(asked: int | None = None) -> int:
    """The most connections to hold: what was asked, else the default, and always below the
    process's file limit less a reserve, so that the store and SIP still get descriptors."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = DEFAULT_MAX_CONNECTIONS * 64 if soft == resource.RLIM_INFINITY else soft - FD_RESERVE
    return max(1, min(asked or DEFAULT_MAX_CONNECTIONS, room))


class Listener:
    """The connections of one listening socket; `Connection`'s `Owner`."""

    def __init__(
        self, app: AsgiApp, sock: socket.socket, limits: Limits, max_connections: int
    ) -> None:
        self._app, self._sock = app, sock
        self.limits, self._cap = limits, max_connections
        self.throttled = LogLimit(log, per_window=3)
        self._loop = asyncio.get_running_loop()
        self._read_buffer = memoryview(bytearray(limits.read_size))
        self._connections: dict[Connection, None] = {}
        self._idle: dict[Connection, None] = {}  # oldest idle first
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._accepting = False
        self._emptied = asyncio.Event()

    def start(self) -> None:
        self._sock.setblocking(False)
        self._resume_accepting()

    @property
    def connections(self) -> int:
        return len(self._connections)

    @property
    def sweeping(self) -> bool:
        """Whether the timeouts' sweep is armed: only while a connection is open."""
        return self._sweeper is not None

    async def stop(self, grace: float) -> None:
        """Stop accepting, close idle connections, give the others `grace` seconds to
        finish their answer, then cut them."""
        self._pause_accepting()
        self._sock.close()
        for conn in list(self._connections):
            conn.shutdown()
        self._emptied.clear()
        if self._connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._emptied.wait(), grace)
        for conn in list(self._connections):
            conn.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._sweeper is not None:
            self._sweeper.cancel()

    # --- Owner, for the connections ---

    def read_buffer(self) -> memoryview:
        # One for all: asyncio hands it to recv_into and straight back to the protocol,
        # which hands them to httptools (callbacks copy what they keep) before any other
        # connection reads.
        return self._read_buffer

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def idle(self, conn: Connection) -> None:
        self._idle.pop(conn, None)
        self._idle[conn] = None

    def busy(self, conn: Connection) -> None:
        self._idle.pop(conn, None)

    def gone(self, conn: Connection) -> None:
        self._connections.pop(conn, None)
        self._idle.pop(conn, None)
        if not self._connections:
            self._emptied.set()

    # --- accepting ---

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                return self._accept_failed(exc)
            self._admit(sock)
        return None

    def _accept_failed(self, exc: OSError) -> None:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        self.throttled.log("accept", logging.WARNING, "cannot accept a connection: %s", reason)
        if exc.errno in _OUT_OF_RESOURCES and self._evict():
            return  # its descriptor is free on the loop's next turn
        self._pause_accepting()
        self._loop.call_later(ACCEPT_RETRY, self._resume_accepting)

    def _admit(self, sock: socket.socket) -> None:
        if len(self._connections) >= self._cap and not self._evict():
            sock.close()
            self.throttled.log(
                "refused",
                logging.WARNING,
                "refused a connection: %d open, none idle",
                len(self._connections),
            )
            return
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # Without it every answer waits out the client's delayed ACK (40 ms).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(self._app, self, self._loop.time)
        self._connections[conn] = None
        if self._sweeper is None:
            self._arm_sweep()
        self.spawn(self._connect(conn, sock))

    async def _connect(self, conn: Connection, sock: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(lambda: conn, sock)
        except OSError:
            self.gone(conn)
            sock.close()

    def _evict(self) -> bool:
        """Close the longest-idle connection, if any is idle."""
        conn = next(iter(self._idle), None)
        if conn is None:
            return False
        self.gone(conn)
        conn.abort()
        self.throttled.log(
            "evicted", logging.WARNING, "at %d connections: closed the longest idle", self._cap
        )
        return True

    def _pause_accepting(self) -> None:
        if self._accepting:
            self._accepting = False
            self._loop.remove_reader(self._sock.fileno())

    def _resume_accepting(self) -> None:
        if not self._accepting and self._sock.fileno() >= 0:
            self._accepting = True
            self._loop.add_reader(self._sock.fileno(), self._accept)

    # --- timeouts ---

    def _sweep(self) -> None:
        self._sweeper = None
        now = self._loop.time()
        for conn in list(self._connections):
            deadline = conn.deadline()
            if deadline is not None and deadline <= now:
                self.gone(conn)
                conn.abort()
                self.throttled.log("timeout", logging.INFO, "closed a connection: timed out")
        if self._connections:  # with none, no timer: an idle service sleeps
            self._arm_sweep()

    def _arm_sweep(self) -> None:
        tick = min(1.0, self.limits.timeout / 4)
        self._sweeper = self._loop.call_later(tick, self._sweep)
