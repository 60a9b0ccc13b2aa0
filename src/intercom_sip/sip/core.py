"""One SIP port's protocol core, sans-IO: bytes in, typed events out (RFC 3261 §17, §18).

In h11's manner: the shell feeds `receive(data, flow, now)` and drains `next_event()`;
the transaction users (registration, calls) call `request`, `respond`, `cancel` and
`send`; `deadline()` / `tick(now)` drive every timer. Transactions live in one dict keyed
by their `TransactionId`, as aioice keeps its STUN transactions: matching a message is
computing its id (§17.1.3, §17.2.3) and one lookup.

Requests that start a transaction go to the user named by their Request-URI (`add_user`),
so that one port can serve several accounts. A client transaction's events (responses,
timeout, transport error) go to the user that opened it (`request(..., owner=)`), as aioice
hands each STUN response to its own transaction: the owner is kept in the transaction's
entry, so it lives and ends with it, and a response for no live transaction is dropped.
Before any transaction is opened, the request is judged (`sip/trust.py`, from the `trust`
value the shell keeps current): a stranger gets one stateless 403 from its source's budget
and nothing else (§6.9); room in the transaction table is kept for the proxy, live dialogs
and our own requests.
Requests for nobody are answered here, from the `Strays` table, through a server
transaction like any other: its retransmissions get the same response, To-tag included.
Responses go back on the flow the request came on (RFC 3581's symmetric response,
always: the monitor sits behind NAT).
"""

import random
from collections import deque
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Final

from intercom_sip.address import Address
from intercom_sip.sip.message import (
    MAX_HEADERS,
    MAX_MESSAGE,
    Headers,
    ParseError,
    Request,
    Response,
    canonical,
    parse,
    parse_name_addr,
    parse_via,
    request_bytes,
    response_bytes,
    response_to,
)
from intercom_sip.sip.transactions import (
    MAGIC,
    Output,
    SendBytes,
    SipTimers,
    TimedOut,
    Transaction,
    TransactionEvent,
    TransactionId,
    TransactionKind,
    TransactionState,
    TransportFailed,
    cancel_for,
    client_id,
    event_of,
    server_id,
)
from intercom_sip.sip.trust import Budget, Rate, Trust, Verdict, judge, user_of, without_token

DEFAULT_TIMERS: Final = SipTimers()


@dataclass(frozen=True)
class Channel:
    """Where a message came from or goes: the shell's own id for a socket or connection,
    whether it is reliable (TCP/TLS), and the remote address."""

    key: Hashable
    reliable: bool
    remote: Address


# --- events ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestReceived:
    """A new request for `user`; answer it with `respond(transaction_id, ...)`. An ACK
    for a 2xx has no transaction (§17): its `transaction_id` is None."""

    request: Request
    transaction_id: TransactionId | None
    flow: Channel
    user: str
    direct: bool = False  # a direct call's request (§6.2: --direct-calls)


@dataclass(frozen=True)
class CancelReceived:
    """The caller cancelled this INVITE: the core answered the CANCEL 200 and, while the
    INVITE had no final response yet, the INVITE 487 (§9.2)."""

    invite_id: TransactionId
    user: str


@dataclass(frozen=True)
class ResponseReceived:
    """A response to the client transaction that `user` opened (`request(..., owner=)`)."""

    response: Response
    transaction_id: TransactionId
    user: str


@dataclass(frozen=True)
class TransactionTimedOut:
    """A client transaction got no final response (B, F, §9.1), or a server one no ACK (H);
    for the transaction's owner, `user`."""

    transaction_id: TransactionId
    user: str


@dataclass(frozen=True)
class TransportError:
    """The flow of this transaction failed or closed (`send_failed`, `flow_closed`); for
    the transaction's owner, `user`."""

    transaction_id: TransactionId
    user: str


@dataclass(frozen=True)
class Transmit:
    """Send these bytes on this flow; report a failure with `send_failed(transaction_id)`."""

    data: bytes
    flow: Channel
    transaction_id: TransactionId | None = None


@dataclass(frozen=True)
class StrangerRefused:
    """A stranger's request was answered 403, statelessly (§6.9): for a log line only.
    At most `Limits.stranger_lines` a second; `left_out` says how many were not told."""

    method: str
    sender: str  # the From URI, as received: escape it before logging
    source: Address
    left_out: int


@dataclass(frozen=True)
class FlowRefused:
    """A stranger went past its answer budget on a connection (§6.9): the shell closes
    it, rather than read and judge all else it sends (a pipelined flood read at full
    speed would starve everything else on the loop)."""

    flow: Channel


CoreEvent = (
    RequestReceived
    | StrangerRefused
    | FlowRefused
    | CancelReceived
    | ResponseReceived
    | TransactionTimedOut
    | TransportError
    | Transmit
)


# --- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Strays:
    """What the core answers to a request for no user: by method, else `otherwise`."""

    answers: Mapping[str, tuple[int, str]] = field(
        default_factory=lambda: {
            "OPTIONS": (200, "OK"),
            "INVITE": (404, "Not Found"),
            "BYE": (481, "Call/Transaction Does Not Exist"),
            "CANCEL": (481, "Call/Transaction Does Not Exist"),
            "INFO": (481, "Call/Transaction Does Not Exist"),
            "UPDATE": (481, "Call/Transaction Does Not Exist"),
            "PRACK": (481, "Call/Transaction Does Not Exist"),
        }
    )
    otherwise: tuple[int, str] = (405, "Method Not Allowed")
    allow: str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE"

    def answer(self, request: Request, to_tag: str) -> Response:
        code, reason = self.answers.get(request.method, self.otherwise)
        extra = [("Allow", self.allow)] if code in (200, 405) else []
        return response_to(request, code, reason, to_tag, extra)


@dataclass(frozen=True)
class PortLimits:
    transactions: int = 512  # live at once; beyond, new requests get 503 (§21.5.4)
    ours: int = 16  # of those, kept for our own requests (the REGISTER, a BYE)
    direct: int = 128  # of those, kept from direct-call sources: the proxy's and dialogs'
    events: int = 1024  # queued; beyond, received messages are dropped (peers resend)
    retry_after: int = 10  # seconds, in those 503s
    stranger_lines: int = 5  # strangers' refusals told each second, in all (§6.9)


@dataclass
class _Live:
    transaction: Transaction
    flow: Channel
    # Who hears of it: the server side's request's user ("" for strays: nobody), the
    # client side's owner. The transaction table is thus the owner table.
    user: str


# --- the core ---------------------------------------------------------------------------------


class Core:
    """One SIP port: its transactions, its users, and the events waiting for the shell."""

    def __init__(
        self,
        rng: random.Random,
        timers: SipTimers = DEFAULT_TIMERS,
        limits: PortLimits = PortLimits(),
        strays: Strays = Strays(),
    ) -> None:
        self._rng, self._timers, self._limits, self._strays = rng, timers, limits, strays
        self._transactions: dict[TransactionId, _Live] = {}
        self._held_cancels: dict[TransactionId, Request] = {}  # §9.1: until a 1xx
        self._users: dict[str, str] = {}
        self._events: deque[CoreEvent] = deque()
        self.dropped = 0  # messages dropped because the event queue was full
        # None: no policy (the core's own unit tests); the service always sets one.
        self.trust: Trust | None = None
        self.budget = Budget()
        self._stranger_lines = Rate(limits.stranger_lines)

    # --- users ---------------------------------------------------------------------------

    def add_user(self, user: str, handler: str | None = None) -> None:
        """Requests whose Request-URI names `user` go to `handler` (default: `user`)."""
        self._users[user] = handler if handler is not None else user

    def remove_user(self, user: str) -> None:
        self._users.pop(user, None)

    # --- the shell's side ----------------------------------------------------------------

    def receive(self, data: bytes, flow: Channel, now: float) -> None:
        """One whole message (a datagram, or what the framer cut from a stream)."""
        if len(self._events) >= self._limits.events:
            self.dropped += 1
            return
        message = parse(data, stream=flow.reliable)
        if isinstance(message, ParseError):
            self._refuse(data, message, flow)
        elif isinstance(message, Response):
            self._on_response(message, now)
        else:
            self._on_request(message, flow, now)

    def next_event(self) -> CoreEvent | None:
        return self._events.popleft() if self._events else None

    def deadline(self) -> float | None:
        deadlines = (live.transaction.deadline() for live in self._transactions.values())
        return min((at for at in deadlines if at is not None), default=None)

    def tick(self, now: float) -> None:
        for tid, live in list(self._transactions.items()):
            at = live.transaction.deadline()
            if at is not None and at <= now:
                self._after(tid, live, live.transaction.tick(now), now)

    def send_failed(self, transaction_id: TransactionId, now: float) -> None:
        """A `Transmit` of this transaction could not be sent."""
        live = self._transactions.get(transaction_id)
        if live is not None:
            self._handle(transaction_id, live, TransactionEvent.TRANSPORT_ERROR, None, now)

    def flow_closed(self, key: Hashable, now: float) -> None:
        """A connection closed: its transactions can send and hear nothing more."""
        for tid, live in list(self._transactions.items()):
            if live.flow.key == key and live.flow.reliable:
                self._handle(tid, live, TransactionEvent.TRANSPORT_ERROR, None, now)

    # --- the transaction users' side -----------------------------------------------------

    def request(
        self, request: Request, flow: Channel, now: float, *, owner: str
    ) -> TransactionId | None:
        """Start a client transaction for `owner`, the user that alone hears of its
        responses, timeout and transport error; the top Via gets a branch unless it has
        one. None: too many live transactions, nothing was sent."""
        if len(self._transactions) >= self._limits.transactions:
            return None
        request = self._with_branch(request)
        tid = client_id(request)
        if tid is None or tid in self._transactions:
            raise ValueError("the request needs a CSeq and a Via with a new branch")
        kind = TransactionKind.of(request.method, server=False)
        live = _Live(Transaction(kind, request, flow.reliable, self._timers), flow, owner)
        self._transactions[tid] = live
        self._after(tid, live, live.transaction.start(now), now)
        return tid

    def respond(self, transaction_id: TransactionId, response: Response, now: float) -> bool:
        """The TU's response on a server transaction; False when the transaction is gone
        or no longer takes one (RFC 3261 discards it)."""
        live = self._transactions.get(transaction_id)
        if live is None or not transaction_id.server or not 100 <= response.code <= 699:
            return False
        event = event_of(response.code, tu=True)
        return self._handle(transaction_id, live, event, response, now)

    def cancel(self, invite_id: TransactionId, now: float) -> TransactionId | None:
        """CANCEL our INVITE (§9.1); None when it has a final response already. Before any
        provisional response the CANCEL waits for one; a final response instead drops it."""
        live = self._transactions.get(invite_id)
        states = (TransactionState.CALLING, TransactionState.PROCEEDING)
        if live is None or live.transaction.kind is not TransactionKind.INVITE_CLIENT:
            return None
        if live.transaction.state not in states:
            return None
        cancel_id = TransactionId(False, invite_id.branch, "CANCEL")
        if cancel_id in self._transactions or invite_id in self._held_cancels:
            return cancel_id
        self._held_cancels[invite_id] = cancel_for(live.transaction.request)
        self._release_cancel(invite_id, now)
        return cancel_id

    def send(self, request: Request, flow: Channel) -> None:
        """Outside any transaction: the ACK for a 2xx (§13.2.2.4), a new branch each time."""
        self._events.append(Transmit(request_bytes(self._with_branch(request)), flow))

    # --- requests --------------------------------------------------------------------------

    def _on_request(self, request: Request, flow: Channel, now: float) -> None:
        tid = server_id(request)
        if tid is None:
            return  # no Via: nowhere to answer
        live = self._transactions.get(tid)
        if live is not None:
            event = TransactionEvent.ACK if request.method == "ACK" else TransactionEvent.REQUEST
            self._handle(tid, live, event, request, now)
            return
        verdict = self._judge(request, flow)
        if verdict is Verdict.STRANGER:
            self._refuse_stranger(request, flow, now)
        elif request.method == "ACK":
            self._deliver_ack(request, flow, verdict)
        elif not self._room(verdict):
            extra = [("Retry-After", str(self._limits.retry_after))]
            busy = response_to(request, 503, "Service Unavailable", self._tag(), extra)
            self._events.append(Transmit(response_bytes(busy), flow))
        elif request.method == "CANCEL":
            self._on_cancel(request, tid, flow, now)
        else:
            self._on_new_request(request, tid, flow, now, verdict)

    def _judge(self, request: Request, flow: Channel) -> Verdict:
        if self.trust is None:
            return Verdict.PROXY
        return judge(self.trust, request, flow.remote[0], flow.reliable, flow.key)

    def _room(self, verdict: Verdict) -> bool:
        """§6.9: a direct-call source cannot fill what the proxy and the dialogs need,
        and nobody's requests can fill what our own REGISTER needs."""
        kept = self._limits.direct if verdict is Verdict.DIRECT else self._limits.ours
        return len(self._transactions) < self._limits.transactions - kept

    def _refuse_stranger(self, request: Request, flow: Channel, now: float) -> None:
        """One stateless 403 (§26.3.2.4: no transaction, nothing resent), within the
        source's budget; the same whatever the user, so that no user can be found out."""
        if not self.budget.admit(flow.remote[0], now):  # its ACKs count too
            if flow.reliable:  # never the proxy's: a connection from it is trusted
                self._events.append(FlowRefused(flow))
            return
        if request.method == "ACK":
            return
        refusal = response_to(request, 403, "Forbidden", self._tag())
        self._events.append(Transmit(response_bytes(refusal), flow))
        lines = self._stranger_lines
        if lines.admit(now):
            sender = request.headers.get("From") or ""
            told = StrangerRefused(request.method, sender, flow.remote, lines.left_out)
            self._events.append(told)
            lines.left_out = 0

    def _user_for(self, request: Request, verdict: Verdict) -> str:
        """Whose request it is: the user its Request-URI names (the token stripped), or,
        for a direct call, the user that takes them."""
        trust = self.trust or Trust()
        user = self._users.get(without_token(user_of(request.uri), trust.token), "")
        if verdict is Verdict.DIRECT or (not user and verdict is Verdict.PEER):
            # A dialog's peer may name any user (our Contact of a direct call, made while
            # no account was set up): the live dialogs are the phone's.
            return trust.direct_to or user
        return user

    def _on_new_request(
        self, request: Request, tid: TransactionId, flow: Channel, now: float, verdict: Verdict
    ) -> None:
        user = self._user_for(request, verdict)
        live = self._open_server(request, tid, flow, user, now)
        if user:
            direct = verdict is Verdict.DIRECT
            self._events.append(RequestReceived(request, tid, flow, user, direct))
        else:
            self._handle(tid, live, *self._stray_answer(request), now)

    def _on_cancel(self, cancel: Request, tid: TransactionId, flow: Channel, now: float) -> None:
        """§9.2: a CANCEL is a transaction of its own, matched to its INVITE for the TU."""
        invite_id = tid.cancelled()
        invite = self._transactions.get(invite_id)
        live = self._open_server(cancel, tid, flow, invite.user if invite else "", now)
        if invite is None:
            self._handle(tid, live, *self._stray_answer(cancel), now)
            return
        tag = self._tag_of(invite.transaction.last_response) or self._tag()
        self._handle(
            tid, live, TransactionEvent.TU_SUCCESS, response_to(cancel, 200, "OK", tag), now
        )
        if invite.transaction.state is TransactionState.PROCEEDING:
            terminated = response_to(invite.transaction.request, 487, "Request Terminated", tag)
            self._handle(invite_id, invite, TransactionEvent.TU_FAILURE, terminated, now)
            self._events.append(CancelReceived(invite_id, invite.user))

    def _deliver_ack(self, ack: Request, flow: Channel, verdict: Verdict) -> None:
        user = self._user_for(ack, verdict)
        if user:  # else: the ACK of a stray 2xx? There is none; never answer an ACK
            self._events.append(RequestReceived(ack, None, flow, user))

    def _open_server(
        self, request: Request, tid: TransactionId, flow: Channel, user: str, now: float
    ) -> _Live:
        kind = TransactionKind.of(request.method, server=True)
        live = _Live(Transaction(kind, request, flow.reliable, self._timers), flow, user)
        self._transactions[tid] = live
        self._after(tid, live, live.transaction.start(now), now)
        return live

    def _stray_answer(self, request: Request) -> tuple[TransactionEvent, Response]:
        answer = self._strays.answer(request, self._tag())
        return event_of(answer.code, tu=True), answer

    def _refuse(self, data: bytes, error: ParseError, flow: Channel) -> None:
        """A malformed request whose Via we can read gets the error's status, statelessly;
        anything else is dropped."""
        salvaged = salvage(data)
        if salvaged is not None:
            answer = response_to(salvaged, error.status, error.reason, self._tag())
            self._events.append(Transmit(response_bytes(answer), flow))

    # --- responses -------------------------------------------------------------------------

    def _on_response(self, response: Response, now: float) -> None:
        tid = client_id(response)
        live = self._transactions.get(tid) if tid is not None else None
        if tid is None or live is None or tid.server:
            return  # §18.1.2: no transaction, silently discarded
        self._handle(tid, live, event_of(response.code), response, now)

    def _release_cancel(self, invite_id: TransactionId, now: float) -> None:
        """§9.1: a held CANCEL goes once the INVITE is Proceeding; a final response (or
        the INVITE's end) makes it pointless."""
        live = self._transactions.get(invite_id)
        state = live.transaction.state if live else TransactionState.TERMINATED
        if invite_id not in self._held_cancels or state is TransactionState.CALLING:
            return
        cancel = self._held_cancels.pop(invite_id)
        if live is not None and state is TransactionState.PROCEEDING:
            self.request(cancel, live.flow, now, owner=live.user)  # the INVITE's owner
            self._handle(invite_id, live, TransactionEvent.CANCEL_SENT, None, now)

    # --- running a transaction ---------------------------------------------------------------

    def _handle(
        self,
        tid: TransactionId,
        live: _Live,
        event: TransactionEvent,
        message: Request | Response | None,
        now: float,
    ) -> bool:
        outputs = live.transaction.handle(event, now, message)
        self._after(tid, live, outputs, now)
        return bool(outputs)

    def _after(self, tid: TransactionId, live: _Live, outputs: list[Output], now: float) -> None:
        self._events.extend(self._event_of(tid, live, output) for output in outputs)
        if live.transaction.terminated:
            self._transactions.pop(tid, None)
        if tid in self._held_cancels:
            self._release_cancel(tid, now)

    @staticmethod
    def _event_of(tid: TransactionId, live: _Live, output: Output) -> CoreEvent:
        if isinstance(output, SendBytes):
            return Transmit(output.data, live.flow, tid)
        if isinstance(output, TimedOut):
            return TransactionTimedOut(tid, live.user)
        if isinstance(output, TransportFailed):
            return TransportError(tid, live.user)
        if isinstance(output.message, Response):
            return ResponseReceived(output.message, tid, live.user)
        return RequestReceived(output.message, None, live.flow, live.user)  # ACK, RFC 6026

    # --- small helpers ----------------------------------------------------------------------

    def _tag(self) -> str:
        return f"{self._rng.getrandbits(32):08x}"

    def _with_branch(self, request: Request) -> Request:
        fields = list(request.headers.fields)
        at = next((i for i, (name, _) in enumerate(fields) if name == "Via"), None)
        via = parse_via(fields[at][1]) if at is not None else None
        if at is None or via is None:
            raise ValueError("the request needs a Via")
        if "branch" not in via.params:
            branch = f"{MAGIC}{self._rng.getrandbits(64):016x}"
            fields[at] = ("Via", f"{fields[at][1]};branch={branch}")
        return Request(request.method, request.uri, Headers(tuple(fields)), request.body)

    @staticmethod
    def _tag_of(response: Response | None) -> str:
        to = parse_name_addr(response.headers.get("To") or "") if response else None
        return to.params.get("tag", "") if to else ""


_SALVAGED: Final = frozenset({"Via", "From", "To", "Call-ID", "CSeq"})


def salvage(data: bytes) -> Request | None:
    """What of a malformed request a 4xx needs (the headers a response copies); None for a
    response, an ACK (never answered) or a message without a readable Via."""
    head = data[:MAX_MESSAGE].replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    lines = head.decode("utf-8", "replace").split("\n")[: MAX_HEADERS + 1]
    method = lines[0].partition(" ")[0]
    if not method or method.startswith("SIP/") or method == "ACK":
        return None
    fields = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon and canonical(name.strip()) in _SALVAGED:
            fields.append((canonical(name.strip()), value.strip()))
    headers = Headers(tuple(fields))
    vias = headers.get_all("Via")
    if not vias or parse_via(vias[0]) is None:
        return None
    return Request(method, "", headers)
