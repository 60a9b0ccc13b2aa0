"""One HTTP/1.1 connection on h11, serving an ASGI app one request at a time.

Bounded by construction, whatever the client does:
- a head over `max_head` bytes answers 431 and closes (h11 refuses an incomplete one,
  `_head_size` a complete one that came in one read);
- pipelined requests wait in h11's buffer, and reading stops while a request is being
  answered: h11 holds at most one read beyond the head being parsed;
- while the transport's buffer is over its high-water mark (a client that does not read
  its answers) no further request is taken, so a client that never reads stalls only
  itself;
- a request body waits in a buffer of at most `body_buffer` bytes for the app to take it;
- `deadline()` says when the connection has waited too long on its client: a head not
  complete `timeout` after the connection opened or after its last answer, a body that
  stalls (less than BODY_PROGRESS bytes in `timeout`), a write blocked for `timeout`.
  The listener's sweep closes it then.

A streamed answer (the live events) waits on nobody while its client reads: no
deadline runs, however long it is quiet. Its app learns `http.disconnect` when the
client goes, half-closes, or the server stops; at a stop it can still write the end.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final, Protocol
from urllib.parse import unquote

import h11

from intercom_sip.api import http
from intercom_sip.api.http import Message, Receive, Response, Scope, Send
from intercom_sip.loglimit import LogLimit

log = logging.getLogger(__name__)

AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BODY_PROGRESS: Final = 1024  # a body slower than this per timeout counts as stalled
_ASGI: Final = {"version": "3.0", "spec_version": "2.3"}
_REASONS: Final = {status.value: status.phrase.encode() for status in HTTPStatus}
_CLOSE: Final = (b"connection", b"close")
_DISCONNECT: Final = {"type": "http.disconnect"}


@dataclass(frozen=True)
class Limits:
    timeout: float = 10.0
    max_head: int = 16384
    read_size: int = 16384
    body_buffer: int = 65536
    write_high_water: int = 65536


class Owner(Protocol):
    """The listener, as a connection sees it."""

    limits: Limits
    throttled: LogLimit

    def spawn(self, work: Coroutine[Any, Any, None]) -> None: ...
    def idle(self, conn: "Connection") -> None: ...
    def busy(self, conn: "Connection") -> None: ...
    def gone(self, conn: "Connection") -> None: ...
    def read_buffer(self) -> memoryview: ...


def raw_answer(answer: Response) -> bytes:
    """An answer written without h11, for a client whose request h11 refused: it is the
    last thing said on the connection."""
    head = [b"HTTP/1.1 %d %s" % (answer.status, _REASONS.get(answer.status, b""))]
    head += [name + b": " + value for name, value in (*answer.headers, _CLOSE)]
    return b"\r\n".join(head) + b"\r\n\r\n" + answer.body


_REFUSALS: Final = {431: raw_answer(http.HEAD_TOO_LARGE)}
_BAD_REQUEST: Final = raw_answer(http.BAD_REQUEST)


class Connection(asyncio.BufferedProtocol):
    def __init__(
        self, app: AsgiApp, owner: Owner, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._app, self._owner, self._clock = app, owner, clock
        self._limits = owner.limits
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=self._limits.max_head)
        self._transport: asyncio.Transport | None = None
        self._cycle: _Cycle | None = None
        self._since = clock()  # the start of the wait on the client (head or body)
        self._progress = 0  # body bytes since `_since`
        self._write_blocked_at: float | None = None
        self._drained: asyncio.Future[None] | None = None
        self._reading = True
        self._closing = False
        self._head_only = False
        self._client: tuple[str, int] | None = None
        self._server: tuple[str, int] | None = None

    # --- asyncio's side ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.set_write_buffer_limits(high=self._limits.write_high_water)
        self._client = _address(transport.get_extra_info("peername"))
        self._server = _address(transport.get_extra_info("sockname"))
        self._since = self._clock()
        self._owner.idle(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._owner.read_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        self._h11.receive_data(bytes(self._owner.read_buffer()[:nbytes]))
        self._advance()

    def eof_received(self) -> bool:
        if self._cycle is not None and self._cycle.streaming:
            self._cycle.stop()  # a client of a stream half-closes only when it leaves
        self._h11.receive_data(b"")
        self._advance()
        return True  # a half-closed client still gets its answers

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._owner.gone(self)
        if self._cycle is not None:
            self._cycle.disconnect()
        self._wake_writer()

    def pause_writing(self) -> None:
        self._write_blocked_at = self._clock()

    def resume_writing(self) -> None:
        self._write_blocked_at = None
        self._wake_writer()
        if self._cycle is None:
            self._advance()  # the requests that waited for the client to read

    # --- the listener's side ---

    def deadline(self) -> float | None:
        """When this connection will have waited too long on its client; None: it waits
        on us."""
        if self._transport is None:
            return None
        if self._write_blocked_at is not None:
            return self._write_blocked_at + self._limits.timeout
        cycle = self._cycle
        if cycle is None or not (cycle.body_complete or cycle.body_full()):
            return self._since + self._limits.timeout
        return None

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def shutdown(self) -> None:
        """Close now if idle, else once the answer in progress is written."""
        self._closing = True
        if self._cycle is None:
            self._close()
        elif self._cycle.streaming:
            self._cycle.stop()  # a stream never ends by itself: ask the app to end it

    # --- requests in ---

    def _advance(self) -> None:
        """Take events from h11 until it needs data, must wait, or a request waits on us."""
        while self._transport is not None and not self._closing and self._may_read():
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._refuse(_REFUSALS.get(exc.error_status_hint, _BAD_REQUEST))
                return
            if not self._take(event):
                return

    def _may_read(self) -> bool:
        cycle = self._cycle
        # Between requests: not while the client leaves its answers unread.
        blocked = cycle.body_full() if cycle else self._write_blocked_at is not None
        if blocked:
            self._pause_reading()
        return not blocked

    def _take(self, event: h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]) -> bool:
        """Whether to go on taking events."""
        if event is h11.NEED_DATA:
            self._resume_reading()
            return False
        if event is h11.PAUSED:  # a request is being answered: the next one waits
            self._pause_reading()
            return False
        if isinstance(event, h11.Request):
            self._start(event)
        elif isinstance(event, h11.Data):
            assert self._cycle is not None
            self._body_progress(len(event.data))
            self._cycle.feed(event.data)
        elif isinstance(event, h11.EndOfMessage):
            assert self._cycle is not None
            self._cycle.end_body()
        else:  # ConnectionClosed: the request in progress is answered first
            if self._cycle is None:
                self._close()
            return False
        return True

    def _start(self, request: h11.Request) -> None:
        headers = [(name, value) for name, value in request.headers]
        if _head_size(request, headers) > self._limits.max_head:
            return self._refuse(_REFUSALS[431])
        self._cycle = _Cycle(self, self._scope(request, headers))
        self._head_only = request.method == b"HEAD"  # h11 frames its answer with no body
        self._since, self._progress = self._clock(), 0
        self._owner.busy(self)
        self._owner.spawn(self._cycle.run(self._app))
        return None

    def _scope(self, request: h11.Request, headers: list[tuple[bytes, bytes]]) -> Scope:
        raw_path, _, query = request.target.partition(b"?")
        path = raw_path.decode("ascii")  # h11 lets only visible ASCII through
        return {
            "type": "http",
            "asgi": _ASGI,
            "http_version": request.http_version.decode("ascii"),
            "server": self._server,
            "client": self._client,
            "scheme": "http",
            "method": request.method.decode("ascii"),
            "root_path": "",
            "path": unquote(path) if "%" in path else path,
            "raw_path": raw_path,
            "query_string": query,
            "headers": headers,
        }

    def _body_progress(self, size: int) -> None:
        self._progress += size
        if self._progress >= BODY_PROGRESS:
            self._since, self._progress = self._clock(), 0

    def body_taken(self) -> None:
        if not self._reading:
            self._advance()

    def continue_if_asked(self) -> None:
        if self._h11.they_are_waiting_for_100_continue and self._transport is not None:
            self._write(h11.InformationalResponse(status_code=100, headers=[]))

    # --- answers out ---

    def write_answer(self, start: Message | None, body: bytes, more: bool) -> None:
        """The head (on the first call), a piece of body, and the end unless `more`."""
        if self._transport is None:
            return
        events: list[h11.Event] = []
        if start is not None:
            events.append(self._response(start))
        if body and not self._head_only:
            events.append(h11.Data(data=body))
        if not more:
            events.append(h11.EndOfMessage())
        try:
            self._transport.write(b"".join(self._h11.send(event) or b"" for event in events))
        except h11.LocalProtocolError as exc:  # the app broke HTTP (e.g. a wrong length)
            self._owner.throttled.log("asgi", logging.ERROR, "bad answer from the app: %s", exc)
            self.abort()

    def _response(self, start: Message) -> h11.Response:
        status = int(start["status"])
        headers = [(bytes(name), bytes(value)) for name, value in start.get("headers", ())]
        if self._closing or self._h11.their_state is not h11.DONE:
            headers.append(_CLOSE)  # a body the app did not read ends the connection
        return h11.Response(status_code=status, headers=headers, reason=_REASONS.get(status, b""))

    def _write(self, event: h11.Event) -> None:
        assert self._transport is not None
        self._transport.write(self._h11.send(event) or b"")

    async def drained(self) -> None:
        if self._write_blocked_at is not None and self._transport is not None:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    def answered(self) -> None:
        """The answer is whole: close, or wait for the next request."""
        self._cycle = None
        if self._transport is None:
            return
        if self._closing or self._h11.our_state is not h11.DONE:
            return self._close()
        try:
            self._h11.start_next_cycle()
        except h11.LocalProtocolError:  # the client closed its side
            return self._close()
        self._since = self._clock()
        self._owner.idle(self)
        self._advance()
        return None

    # --- the ends ---

    def _refuse(self, answer: bytes) -> None:
        if self._transport is None:
            return
        if self._cycle is not None:  # broke HTTP mid-body while the app runs
            return self.abort()
        self._transport.write(answer)
        self._close()
        return None

    def _close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()  # after what is buffered

    def _pause_reading(self) -> None:
        if self._reading and self._transport is not None:
            self._reading = False
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if not self._reading and self._transport is not None:
            self._reading = True
            self._transport.resume_reading()

    def _wake_writer(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None


class _Cycle:
    """One request and its answer: the app's `receive` and `send`."""

    def __init__(self, conn: Connection, scope: Scope) -> None:
        self._conn, self.scope = conn, scope
        self._body = bytearray()
        self._body_limit = conn._limits.body_buffer
        self.body_complete = False
        self._body_given = False
        self._disconnected = False
        self._stopping = False  # the app is asked to end a streamed answer now
        self._start: Message | None = None
        self._head_sent = False
        self._done = False
        self._waiter: asyncio.Future[None] | None = None

    async def run(self, app: AsgiApp) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except Exception:
            self._conn._owner.throttled.log(
                "asgi", logging.ERROR, "unhandled error in the app", exc_info=True
            )
            if self._start is None:
                await http.send_response(self.send, http.INTERNAL)
        finally:
            if not self._done:  # the app ended without a whole answer
                self._conn.abort()

    # --- fed by the connection ---

    def body_full(self) -> bool:
        return len(self._body) >= self._body_limit

    def feed(self, data: bytes) -> None:
        self._body += data
        self._wake()

    def end_body(self) -> None:
        self.body_complete = True
        self._wake()

    def disconnect(self) -> None:
        self._disconnected = True
        self._wake()

    @property
    def streaming(self) -> bool:
        """The head is sent and the body goes on: an answer that ends when the app says."""
        return self._head_sent and not self._done

    def stop(self) -> None:
        """Tell the app `http.disconnect` while it can still write the end of its answer:
        the server stops, or the client half-closed a stream."""
        self._stopping = True
        self._wake()

    # --- the app's side ---

    async def receive(self) -> Message:
        while not (self._body or self.body_complete or self._disconnected):
            self._conn.continue_if_asked()
            await self._wait()
        if self._body or (self.body_complete and not self._body_given):
            data = bytes(self._body)
            self._body.clear()
            self._body_given = self.body_complete
            self._conn.body_taken()
            return {"type": "http.request", "body": data, "more_body": not self.body_complete}
        while not (self._disconnected or self._stopping or self._done):
            await self._wait()
        return dict(_DISCONNECT)

    async def send(self, message: Message) -> None:
        if self._disconnected:
            return  # nobody reads it; the app learns from receive()
        kind = message["type"]
        if kind == "http.response.start" and self._start is None:
            self._start = message
            return
        if kind != "http.response.body" or self._start is None or self._done:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        more = bool(message.get("more_body", False))
        start = None if self._head_sent else self._start
        self._head_sent = True
        self._conn.write_answer(start, message.get("body", b""), more)
        if more:
            await self._conn.drained()
            return
        self._done = True
        self._wake()
        self._conn.answered()

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def _head_size(request: h11.Request, headers: list[tuple[bytes, bytes]]) -> int:
    """The request head's size as sent, near enough (h11 trims spaces around values)."""
    size = len(request.method) + len(request.target) + 14  # " ", " HTTP/1.1\r\n", "\r\n"
    for name, value in headers:
        size += len(name) + len(value) + 4  # ": ", "\r\n"
    return size


def _address(info: Any) -> tuple[str, int] | None:
    return (str(info[0]), int(info[1])) if isinstance(info, tuple) and len(info) >= 2 else None
