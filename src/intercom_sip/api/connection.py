"""One HTTP/1.1 connection parsed by httptools (llhttp), serving an ASGI app one request
at a time.

Bounded by construction, whatever the client does:
- a head over `max_head` bytes answers 431 and closes (counted as it comes in reads while
  incomplete, and exactly from its parts once whole);
- reading stops while a whole request is being answered: httptools parses each read whole,
  so what one read brings beyond the request in progress waits parsed, at most
  MAX_PIPELINED requests (a longer pipeline is answered that far, then closed, as
  RFC 9112 §9.3.2 allows);
- while the transport's buffer is over its high-water mark (a client that does not read
  its answers) no further request is taken, so a client that never reads stalls only
  itself;
- a request body waits in a buffer of at most `body_buffer` bytes for the app to take it
  (plus what one read brings);
- `deadline()` says when the connection has waited too long on its client: a head not
  complete `timeout` after the connection opened or after its last answer, a body that
  stalls (less than BODY_PROGRESS bytes in `timeout`), a write blocked for `timeout`, a
  lingering close not ended by the client. The listener's sweep closes it then.

Every close of ours that the client may still be sending into lingers (RFC 9112 §9.6):
our side is shut after the last answer, and what still comes is read and dropped until the
client closes, LINGER passes or LINGER_BYTES came, so that a close never turns into a reset
that loses the answer.

A streamed answer (the live events) waits on nobody while its client reads: no
deadline runs, however long it is quiet. Its app learns `http.disconnect` when the
client goes, half-closes, or the server stops; at a stop it can still write the end.
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any, Final, Protocol

import httptools

from intercom_sip.api import h1, http
from intercom_sip.api.http import Message, Receive, Scope, Send
from intercom_sip.loglimit import LogLimit

log = logging.getLogger(__name__)

AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BODY_PROGRESS: Final = 1024  # a body slower than this per timeout counts as stalled
MAX_PIPELINED: Final = 32  # requests parsed ahead of the one being answered
LINGER: Final = 2.0  # seconds a closing connection reads and drops what still comes
LINGER_BYTES: Final = 65536  # and at most this much: a client that pushes on is cut
_DISCONNECT: Final = {"type": "http.disconnect"}
_METHODS: dict[bytes, str] = {}  # the methods seen, decoded once (bounded: llhttp's list)


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


class _Refused(Exception):
    """Raised in a parser callback to stop parsing: the answer is in `_refusal`."""


class Connection(asyncio.BufferedProtocol):
    def __init__(
        self, app: AsgiApp, owner: Owner, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._app, self._owner, self._clock = app, owner, clock
        self._limits = owner.limits
        self._parser = httptools.HttpRequestParser(self)
        self._transport: Any = None  # asyncio's or uvloop's: both Transports, one not by type
        self._cycles: deque[_Cycle] = deque()  # the one answered first, then those parsed
        self._since = clock()  # the start of the wait on the client (head or body)
        self._progress = 0  # body bytes since `_since`
        self._write_blocked_at: float | None = None
        self._drained: asyncio.Future[None] | None = None
        self._reading = True
        self._closing = False  # the server stops: no further request
        self._ended = False  # no further request on this connection
        self._eof = False
        self._lingering_since: float | None = None
        self._dropped = 0  # bytes read past the last request
        self._refusal: bytes | None = None  # the last answer, once those before it are out
        self._due = False  # the request in front is to run once the read is parsed
        self._client: tuple[str, int] | None = None
        self._server: tuple[str, int] | None = None
        # The head being parsed.
        self._in_head = True
        self._parsing = False  # a request begun, not yet whole
        self._head_read = 0  # bytes of reads that began inside an incomplete head
        self._head_size = 0
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._hosts = 0
        self._coding: bytes | None = None  # Transfer-Encoding
        self._expect = False

    # --- asyncio's side ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._transport.set_write_buffer_limits(high=self._limits.write_high_water)
        self._client = _address(transport.get_extra_info("peername"))
        self._server = _address(transport.get_extra_info("sockname"))
        self._since = self._clock()
        self._owner.idle(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._owner.read_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        if self._ended:  # lingering, or past the last request: dropped
            self._dropped += nbytes
            if self._dropped > LINGER_BYTES:
                self.abort()
            return
        if self._in_head:
            self._head_read += nbytes
        try:
            self._parser.feed_data(self._owner.read_buffer()[:nbytes])
        except httptools.HttpParserUpgrade:
            self._ended = True  # no protocol but this one: answered, then closed
        except httptools.HttpParserError as exc:
            if not self._ended:  # after a request that closes, what follows is dropped
                self._refuse(self._refusal or h1.refusal_for(str(exc), self._coding))
        else:
            if self._in_head and self._head_read > self._limits.max_head:
                self._refuse(h1.HEAD_TOO_LARGE)
        if self._due:
            self._due = False
            _run_eagerly(self._cycles[0].run(self._app), self._owner)
        self._flow()

    def eof_received(self) -> bool:
        self._eof = True
        if self._lingering_since is not None:
            return False  # the client has read our answers and closed: close too
        self._ended = True
        if self._cycles:
            front = self._cycles[0]
            if front.streaming:
                front.stop()  # a client of a stream half-closes only when it leaves
            if not self._cycles[-1].body_complete:
                self._drop_unfinished()
        if not self._cycles:
            self._finish()
        return True  # a half-closed client still gets its answers

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._owner.gone(self)
        if self._cycles:
            self._cycles[0].disconnect()
        self._wake_writer()

    def pause_writing(self) -> None:
        self._write_blocked_at = self._clock()

    def resume_writing(self) -> None:
        self._write_blocked_at = None
        self._wake_writer()
        self._flow()  # the requests that waited for the client to read

    # --- httptools' side ---

    def on_message_begin(self) -> None:
        if self._ended:
            raise _Refused  # after a request that closes the connection: dropped
        if len(self._cycles) >= MAX_PIPELINED:
            self._ended = True  # answered this far; the client sends the rest again
            raise _Refused
        self._parsing = True
        self._url, self._headers = b"", []
        self._head_size, self._hosts, self._coding, self._expect = 0, 0, None, False

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._grow_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4  # _grow_head's, without its call
        if self._head_size > self._limits.max_head:
            self._refusal = h1.HEAD_TOO_LARGE
            raise _Refused
        if not self._in_head:
            return  # a trailer: counted, not kept
        name = name.lower()
        self._headers.append((name, value.rstrip(b" \t")))
        if name == b"host":
            self._hosts += 1
        elif name == b"transfer-encoding":
            self._coding = value.strip()
        elif name == b"expect":
            self._expect = value.strip().lower() == b"100-continue"

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        version = parser.get_http_version()
        refusal = h1.check(version, self._hosts, self._coding)
        method = _method(parser.get_method())
        scope = None
        if refusal is None:
            scope = h1.scope(
                method, self._url, version, self._headers, client=self._client, server=self._server
            )
        if scope is None:
            self._refusal = refusal or h1.BAD_REQUEST
            raise _Refused
        head = h1.Head(
            parser.should_keep_alive(), method == "HEAD", self._expect and version == "1.1"
        )
        self._cycles.append(_Cycle(self, scope, head))
        self._since, self._progress = self._clock(), 0
        if len(self._cycles) == 1:
            self._cycles[0].started = self._due = True  # run once this read is parsed
            self._owner.busy(self)

    def on_body(self, data: bytes) -> None:
        self._progress += len(data)
        if self._progress >= BODY_PROGRESS:
            self._since, self._progress = self._clock(), 0
        self._cycles[-1].feed(data)

    def on_message_complete(self) -> None:
        cycle = self._cycles[-1]
        cycle.end_body()
        self._in_head, self._head_read, self._parsing = True, 0, False
        if not cycle.head.keep_alive:
            self._ended = True  # what the client sends after it is dropped

    def _grow_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self._limits.max_head:
            self._refusal = h1.HEAD_TOO_LARGE
            raise _Refused

    # --- the listener's side ---

    def deadline(self) -> float | None:
        """When this connection will have waited too long on its client; None: it waits
        on us."""
        if self._transport is None:
            return None
        if self._write_blocked_at is not None:
            return self._write_blocked_at + self._limits.timeout
        if self._lingering_since is not None:
            return self._lingering_since + min(LINGER, self._limits.timeout)
        if not self._cycles or self._awaits_body():
            return self._since + self._limits.timeout
        return None

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def shutdown(self) -> None:
        """Close now if idle, else once the answer in progress is written."""
        self._closing = self._ended = True
        if self._lingering_since is not None:
            self.abort()
        elif not self._cycles:
            if self._transport is not None:
                self._transport.close()  # between requests: nothing of theirs unread
        elif self._cycles[0].streaming:
            self._cycles[0].stop()  # a stream never ends by itself: ask the app to end it

    # --- requests in ---

    def _awaits_body(self) -> bool:
        """The request in progress waits for body from the client."""
        front = self._cycles[0]
        return len(self._cycles) == 1 and not front.body_complete and not front.body_full()

    def _answering_alone(self) -> bool:
        """A request is being answered and nothing came after it: reading on tells when the
        client leaves (a stream's end) and holds one read beyond at most."""
        return len(self._cycles) == 1 and self._cycles[0].body_complete and not self._parsing

    def _flow(self) -> None:
        """Read while something is to be read: a head between answers (not while the
        client leaves answers unread), the body of the request in progress, or input to
        drop while lingering."""
        if self._transport is None:
            return
        if self._lingering_since is not None:
            wanted = True
        elif self._ended:
            wanted = False
        elif self._cycles:  # the body in progress, or whether the client leaves
            wanted = self._awaits_body() or self._answering_alone()
        else:
            wanted = self._write_blocked_at is None
        if wanted != self._reading:
            self._reading = wanted
            if wanted:
                self._transport.resume_reading()
            else:
                self._transport.pause_reading()

    def _start_front(self) -> None:
        cycle = self._cycles[0]
        cycle.started = True
        self._owner.busy(self)
        self._owner.spawn(cycle.run(self._app))

    def body_taken(self) -> None:
        if not self._reading:
            self._flow()

    def continue_if_asked(self, cycle: "_Cycle") -> None:
        if cycle.head.expect_continue and not cycle.continued and self._transport is not None:
            cycle.continued = True
            self._transport.write(h1.CONTINUE)

    def _drop_unfinished(self) -> None:
        """The last request's body will never be whole: its app learns the client left;
        one not started is forgotten."""
        if len(self._cycles) == 1:
            self._cycles[0].disconnect()
        else:
            self._cycles.pop()

    # --- answers out ---

    def write_answer(
        self, cycle: "_Cycle", start: Message | None, body: bytes, more: bool
    ) -> None:
        """The head (on the first call), a piece of body, and the end unless `more`."""
        if self._transport is None:
            return
        out = b""
        if start is not None:
            keep = cycle.head.keep_alive and not self._closing and cycle.body_complete
            made = h1.answer_head(
                int(start["status"]),
                start.get("headers", ()),
                cycle.scope["http_version"],
                keep,
                None if more else body,
            )
            if made is None:
                return self._app_broke_http("headers that cannot be sent")
            out, cycle.framing = made
        framing = cycle.framing
        assert framing is not None
        if framing.remaining is not None:
            framing.remaining -= len(body)
            if framing.remaining < 0 or (not more and framing.remaining > 0):
                return self._app_broke_http("a body that is not its Content-Length")
        if not cycle.head.head_only:
            if framing.chunked:
                out += (h1.chunk(body) if body else b"") + (b"" if more else h1.LAST_CHUNK)
            else:
                out += body
        self._transport.write(out)
        return None

    def _app_broke_http(self, what: str) -> None:
        self._owner.throttled.log("asgi", logging.ERROR, "bad answer from the app: %s", what)
        self.abort()

    async def drained(self) -> None:
        if self._write_blocked_at is not None and self._transport is not None:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    def answered(self, cycle: "_Cycle") -> None:
        """The answer is whole: close, or go on with the next request."""
        if self._cycles and self._cycles[0] is cycle:
            self._cycles.popleft()
        if self._transport is None:
            return
        if cycle.framing is None or not cycle.framing.keep_alive:
            return self._finish(linger=not self._closing)  # a stop does not wait on them
        if self._cycles:
            self._since = self._clock()
            self._start_front()
        elif self._ended:
            return self._finish()
        else:
            self._since = self._clock()
            self._owner.idle(self)
        self._flow()
        return None

    # --- the ends ---

    def _refuse(self, answer: bytes) -> None:
        """No further request: answer the ones parsed, then `answer`, then close."""
        self._ended = True
        if self._cycles and not self._cycles[-1].body_complete:
            if len(self._cycles) == 1 and self._cycles[0].started:
                return self.abort()  # broke HTTP mid-body while its app runs
            self._cycles.pop()
        self._refusal = answer
        if not self._cycles:
            self._finish()
        return None

    def _finish(self, linger: bool = True) -> None:
        """The last answer is out (a refusal still due is written now): close, lingering
        if the client may still be sending."""
        self._ended = True
        transport = self._transport
        if transport is None or self._lingering_since is not None:
            return
        if self._refusal is not None:
            transport.write(self._refusal)
            self._refusal = None
        if self._eof or not linger:
            transport.close()  # after what is buffered
            return
        try:
            transport.write_eof()  # after what is buffered; then read and drop until they close
        except OSError:  # the client is already gone
            transport.abort()
            return
        self._lingering_since = self._clock()
        self._owner.idle(self)
        self._flow()

    def _wake_writer(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None


class _Cycle:
    """One request and its answer: the app's `receive` and `send`."""

    # One per request: slots make it and its sixteen fields without a dict.
    __slots__ = (
        "_body",
        "_body_given",
        "_body_limit",
        "_conn",
        "_disconnected",
        "_done",
        "_head_sent",
        "_start",
        "_stopping",
        "_waiter",
        "body_complete",
        "continued",
        "framing",
        "head",
        "scope",
        "started",
    )

    def __init__(self, conn: Connection, scope: Scope, head: h1.Head) -> None:
        self._conn, self.scope, self.head = conn, scope, head
        # What came of the body and the app has not taken: the one piece as httptools gave
        # it (most bodies come in one read: no copy), or the pieces joined in place.
        self._body: bytes | bytearray = b""
        self._body_limit = conn._limits.body_buffer
        self.body_complete = False
        self.started = False
        self.continued = False
        self.framing: h1.Framing | None = None
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
        if not self._body:
            self._body = data
        elif type(self._body) is bytes:
            self._body = bytearray(self._body) + data  # then appended to in place
        else:
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
            self._conn.continue_if_asked(self)
            await self._wait()
        if self._body or (self.body_complete and not self._body_given):
            data, self._body = bytes(self._body), b""  # bytes(a bytes) is the same object
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
        self._conn.write_answer(self, start, message.get("body", b""), more)
        if more:
            await self._conn.drained()
            return
        self._done = True
        self._wake()
        self._conn.answered(self)

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def _run_eagerly(work: Coroutine[Any, Any, None], owner: Owner) -> None:
    """Run `work` now, as far as it goes without waiting; a task takes over only if it
    waits. Most answers (a GET, a refused POST) never wait, and a task for each cost a
    tenth of such a request (creating, scheduling and forgetting it)."""
    try:
        waiting = work.send(None)
    except StopIteration:
        return
    owner.spawn(_Resumed(work, waiting))


class _Resumed(Coroutine[Any, Any, None]):
    """`work`, suspended where it first waited, as a coroutine a task can drive: the
    task's first step gets what `work` yielded (the future it waits on, or None for one
    turn of the loop), and every later step, sent or thrown in (a future's outcome, a
    cancel), goes straight to `work`, as if the task had driven it from its start."""

    def __init__(self, work: Coroutine[Any, Any, None], waiting: Any) -> None:
        self._work, self._waiting = work, waiting
        self._begun = False

    def send(self, value: Any) -> Any:
        if not self._begun:
            self._begun = True
            return self._waiting
        return self._work.send(value)

    def throw(self, exc: Any, *rest: Any) -> Any:  # a cancel may come before the first step
        self._begun = True
        return self._work.throw(exc, *rest)

    def close(self) -> None:
        self._work.close()

    def __await__(self) -> Generator[Any, None, None]:
        raise TypeError("driven by its task only")


def _method(raw: bytes) -> str:
    method = _METHODS.get(raw)
    if method is None:
        method = _METHODS[raw] = raw.decode("ascii")
    return method


def _address(info: Any) -> tuple[str, int] | None:
    return (str(info[0]), int(info[1])) if isinstance(info, tuple) and len(info) >= 2 else None
