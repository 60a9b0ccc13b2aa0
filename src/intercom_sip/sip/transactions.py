"""SIP transactions (RFC 3261 §17, updated by RFC 6026), as state x event tables; pure.

Four machines, one table each: INVITE client, non-INVITE client, INVITE server and
non-INVITE server. A row says, for a state and an event (a response, a request
retransmission, the TU's response, a transport error, a timer), the next state and the
actions in order. A (state, event) pair without a row is absorbed: RFC 3261 discards
those messages (a response in Completed, the TU's response after a final one...).

Time comes in as `now`; `deadline()` and `tick(now)` drive the timers, as in
`registration.py`. A timer belongs to the states listed in `RUNS_IN`: entering any other
state stops it. Retransmission timers (A, E, G) do not run on a reliable transport;
the wait-for-stragglers timers (D, I, J, K) are zero there.
"""

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum, auto
from typing import Final

from intercom_sip.sip.message import (
    Headers,
    Request,
    Response,
    Via,
    parse_cseq,
    parse_name_addr,
    parse_via,
    request_bytes,
    response_bytes,
    response_to,
)

Message = Request | Response

T1: Final = 0.5  # seconds: RFC 3261's round-trip estimate (§17.1.1.1), unless told otherwise


@dataclass(frozen=True)
class SipTimers:
    """RFC 3261 §17.1.1.1 and Table 4; the service options may shorten them for tests."""

    t1: float = T1
    t2: float = 4.0  # longest retransmit interval of non-INVITE requests and responses
    t4: float = 5.0  # how long a message may stay in the network
    d: float = 32.0  # Timer D: at least 32 s on UDP
    trying: float = 0.2  # §17.2.1: a 100 Trying unless the TU answers within 200 ms


class TransactionState(Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"  # RFC 6026: a 2xx went by; the TU owns its ACK
    TERMINATED = "terminated"


class TransactionEvent(Enum):
    PROVISIONAL = auto()  # a 1xx response arrived (client)
    SUCCESS = auto()  # a 2xx arrived
    FAILURE = auto()  # a 300-699 arrived
    REQUEST = auto()  # the request again (server: a retransmission)
    ACK = auto()  # an ACK matched the INVITE server transaction
    TU_PROVISIONAL = auto()  # the TU responds 101-199 (server)
    TU_SUCCESS = auto()  # the TU responds 2xx
    TU_FAILURE = auto()  # the TU responds 300-699
    CANCEL_SENT = auto()  # the TU cancelled this INVITE (client)
    TRANSPORT_ERROR = auto()


class TimerName(Enum):
    A = "A"  # INVITE request retransmit, doubling without cap
    B = "B"  # INVITE transaction timeout
    D = "D"  # wait for response retransmissions after a non-2xx
    E = "E"  # non-INVITE request retransmit, doubling to T2
    F = "F"  # non-INVITE transaction timeout
    K = "K"  # wait for response retransmissions
    G = "G"  # INVITE final response retransmit, doubling to T2
    H = "H"  # wait for the ACK
    I = "I"  # noqa: E741 - RFC 3261's name; wait for ACK retransmissions
    J = "J"  # wait for non-INVITE request retransmissions
    L = "L"  # RFC 6026: wait for INVITE retransmissions after a 2xx
    M = "M"  # RFC 6026: wait for more 2xx (forks, retransmissions)
    TRYING = "100"  # send 100 Trying unless the TU answered
    CANCELLED = "cancelled"  # §9.1: no final 64·T1 after our CANCEL, give up


class Do(Enum):
    SEND_REQUEST = auto()  # the request, (again) to the transport
    SEND_ACK = auto()  # the ACK for a non-2xx final response (§17.1.1.3)
    SEND_RESPONSE = auto()  # the TU's response; it becomes the last one sent
    RESEND_RESPONSE = auto()  # the last response sent, if any, again
    SEND_TRYING = auto()  # a 100 Trying built from the request
    DELIVER = auto()  # the message, up to the TU
    TIME_OUT = auto()  # tell the TU the transaction timed out
    FAIL = auto()  # tell the TU the transport failed


@dataclass(frozen=True)
class Start:
    timer: TimerName


@dataclass(frozen=True)
class Again:
    """Restart a retransmission timer, its interval doubled (capped where it caps)."""

    timer: TimerName
    at_t2: bool = False  # §17.1.2.2: Timer E in Proceeding is always T2


@dataclass(frozen=True)
class Stop:
    timer: TimerName


Action = Do | Start | Again | Stop


@dataclass(frozen=True)
class Row:
    next: TransactionState
    do: tuple[Action, ...] = ()


Table = dict[tuple[TransactionState, TransactionEvent | TimerName], Row]
S, E, T = TransactionState, TransactionEvent, TimerName

# --- INVITE client (§17.1.1, RFC 6026 §8.4) ---------------------------------------------
INVITE_CLIENT: Final[Table] = {
    (S.CALLING, T.A): Row(S.CALLING, (Do.SEND_REQUEST, Again(T.A))),
    (S.CALLING, T.B): Row(S.TERMINATED, (Do.TIME_OUT,)),
    (S.CALLING, E.PROVISIONAL): Row(S.PROCEEDING, (Do.DELIVER,)),
    (S.CALLING, E.SUCCESS): Row(S.ACCEPTED, (Do.DELIVER, Start(T.M))),
    (S.CALLING, E.FAILURE): Row(S.COMPLETED, (Do.SEND_ACK, Do.DELIVER, Start(T.D))),
    (S.CALLING, E.TRANSPORT_ERROR): Row(S.TERMINATED, (Do.FAIL,)),
    (S.PROCEEDING, E.PROVISIONAL): Row(S.PROCEEDING, (Do.DELIVER,)),
    (S.PROCEEDING, E.SUCCESS): Row(S.ACCEPTED, (Do.DELIVER, Start(T.M))),
    (S.PROCEEDING, E.FAILURE): Row(S.COMPLETED, (Do.SEND_ACK, Do.DELIVER, Start(T.D))),
    (S.PROCEEDING, E.CANCEL_SENT): Row(S.PROCEEDING, (Start(T.CANCELLED),)),
    (S.PROCEEDING, T.CANCELLED): Row(S.TERMINATED, (Do.TIME_OUT,)),
    # A closed connection: the final response can no longer come.
    (S.PROCEEDING, E.TRANSPORT_ERROR): Row(S.TERMINATED, (Do.FAIL,)),
    (S.COMPLETED, E.FAILURE): Row(S.COMPLETED, (Do.SEND_ACK,)),
    (S.COMPLETED, T.D): Row(S.TERMINATED),
    (S.COMPLETED, E.TRANSPORT_ERROR): Row(S.TERMINATED, (Do.FAIL,)),
    (S.ACCEPTED, E.SUCCESS): Row(S.ACCEPTED, (Do.DELIVER,)),
    (S.ACCEPTED, T.M): Row(S.TERMINATED),
}

# --- non-INVITE client (§17.1.2) -----------------------------------------------------------
NON_INVITE_CLIENT: Final[Table] = {
    (S.TRYING, T.E): Row(S.TRYING, (Do.SEND_REQUEST, Again(T.E))),
    (S.TRYING, T.F): Row(S.TERMINATED, (Do.TIME_OUT,)),
    (S.TRYING, E.PROVISIONAL): Row(S.PROCEEDING, (Do.DELIVER,)),
    (S.TRYING, E.SUCCESS): Row(S.COMPLETED, (Do.DELIVER, Start(T.K))),
    (S.TRYING, E.FAILURE): Row(S.COMPLETED, (Do.DELIVER, Start(T.K))),
    (S.TRYING, E.TRANSPORT_ERROR): Row(S.TERMINATED, (Do.FAIL,)),
    (S.PROCEEDING, T.E): Row(S.PROCEEDING, (Do.SEND_REQUEST, Again(T.E, at_t2=True))),
    (S.PROCEEDING, T.F): Row(S.TERMINATED, (Do.TIME_OUT,)),
    (S.PROCEEDING, E.PROVISIONAL): Row(S.PROCEEDING, (Do.DELIVER,)),
    (S.PROCEEDING, E.SUCCESS): Row(S.COMPLETED, (Do.DELIVER, Start(T.K))),
    (S.PROCEEDING, E.FAILURE): Row(S.COMPLETED, (Do.DELIVER, Start(T.K))),
    (S.PROCEEDING, E.TRANSPORT_ERROR): Row(S.TERMINATED, (Do.FAIL,)),
    (S.COMPLETED, T.K): Row(S.TERMINATED),
}

# --- INVITE server (§17.2.1, RFC 6026 §7.1) -------------------------------------------------
INVITE_SERVER: Final[Table] = {
    (S.PROCEEDING, T.TRYING): Row(S.PROCEEDING, (Do.SEND_TRYING,)),
    (S.PROCEEDING, E.REQUEST): Row(S.PROCEEDING, (Do.RESEND_RESPONSE,)),
    (S.PROCEEDING, E.TU_PROVISIONAL): Row(S.PROCEEDING, (Do.SEND_RESPONSE, Stop(T.TRYING))),
    (S.PROCEEDING, E.TU_SUCCESS): Row(S.ACCEPTED, (Do.SEND_RESPONSE, Start(T.L))),
    (S.PROCEEDING, E.TU_FAILURE): Row(S.COMPLETED, (Do.SEND_RESPONSE, Start(T.G), Start(T.H))),
    (S.PROCEEDING, E.TRANSPORT_ERROR): Row(S.TERMINATED, (Do.FAIL,)),
    (S.COMPLETED, E.REQUEST): Row(S.COMPLETED, (Do.RESEND_RESPONSE,)),
    (S.COMPLETED, T.G): Row(S.COMPLETED, (Do.RESEND_RESPONSE, Again(T.G))),
    (S.COMPLETED, T.H): Row(S.TERMINATED, (Do.TIME_OUT,)),
    (S.COMPLETED, E.ACK): Row(S.CONFIRMED, (Start(T.I),)),
    (S.COMPLETED, E.TRANSPORT_ERROR): Row(S.TERMINATED, (Do.FAIL,)),
    (S.CONFIRMED, T.I): Row(S.TERMINATED),
    # The TU retransmits its 2xx (§13.3.1.4) through the transaction while it lives.
    (S.ACCEPTED, E.TU_SUCCESS): Row(S.ACCEPTED, (Do.SEND_RESPONSE,)),
    # An ACK for the 2xx that reused the INVITE's branch: it is the TU's.
    (S.ACCEPTED, E.ACK): Row(S.ACCEPTED, (Do.DELIVER,)),
    (S.ACCEPTED, E.TRANSPORT_ERROR): Row(S.TERMINATED, (Do.FAIL,)),
    (S.ACCEPTED, T.L): Row(S.TERMINATED),
}

# --- non-INVITE server (§17.2.2) -------------------------------------------------------------
NON_INVITE_SERVER: Final[Table] = {
    (S.TRYING, E.TU_PROVISIONAL): Row(S.PROCEEDING, (Do.SEND_RESPONSE,)),
    (S.TRYING, E.TU_SUCCESS): Row(S.COMPLETED, (Do.SEND_RESPONSE, Start(T.J))),
    (S.TRYING, E.TU_FAILURE): Row(S.COMPLETED, (Do.SEND_RESPONSE, Start(T.J))),
    (S.PROCEEDING, E.REQUEST): Row(S.PROCEEDING, (Do.RESEND_RESPONSE,)),
    (S.PROCEEDING, E.TU_PROVISIONAL): Row(S.PROCEEDING, (Do.SEND_RESPONSE,)),
    (S.PROCEEDING, E.TU_SUCCESS): Row(S.COMPLETED, (Do.SEND_RESPONSE, Start(T.J))),
    (S.PROCEEDING, E.TU_FAILURE): Row(S.COMPLETED, (Do.SEND_RESPONSE, Start(T.J))),
    (S.PROCEEDING, E.TRANSPORT_ERROR): Row(S.TERMINATED, (Do.FAIL,)),
    (S.COMPLETED, E.REQUEST): Row(S.COMPLETED, (Do.RESEND_RESPONSE,)),
    (S.COMPLETED, E.TRANSPORT_ERROR): Row(S.TERMINATED, (Do.FAIL,)),
    (S.COMPLETED, T.J): Row(S.TERMINATED),
}


class Reliable(Enum):
    """What a timer becomes on TCP/TLS."""

    SAME = auto()
    ZERO = auto()  # nothing to wait for: no retransmissions on a reliable transport
    OFF = auto()  # retransmissions are the transport's job


@dataclass(frozen=True)
class TimerSpec:
    first: Callable[[SipTimers], float]
    reliable: Reliable = Reliable.SAME
    cap: Callable[[SipTimers], float] | None = None  # a doubling timer's longest interval


SPECS: Final[dict[TimerName, TimerSpec]] = {
    T.A: TimerSpec(lambda t: t.t1, Reliable.OFF, lambda t: float("inf")),
    T.B: TimerSpec(lambda t: 64 * t.t1),
    T.D: TimerSpec(lambda t: t.d, Reliable.ZERO),
    T.E: TimerSpec(lambda t: t.t1, Reliable.OFF, lambda t: t.t2),
    T.F: TimerSpec(lambda t: 64 * t.t1),
    T.K: TimerSpec(lambda t: t.t4, Reliable.ZERO),
    T.G: TimerSpec(lambda t: t.t1, Reliable.OFF, lambda t: t.t2),
    T.H: TimerSpec(lambda t: 64 * t.t1),
    T.I: TimerSpec(lambda t: t.t4, Reliable.ZERO),
    T.J: TimerSpec(lambda t: 64 * t.t1, Reliable.ZERO),
    T.L: TimerSpec(lambda t: 64 * t.t1),
    T.M: TimerSpec(lambda t: 64 * t.t1),
    T.TRYING: TimerSpec(lambda t: t.trying),
    T.CANCELLED: TimerSpec(lambda t: 64 * t.t1),  # §9.1
}

RUNS_IN: Final[dict[TransactionState, frozenset[TimerName]]] = {
    S.CALLING: frozenset({T.A, T.B}),
    S.TRYING: frozenset({T.E, T.F}),
    S.PROCEEDING: frozenset({T.E, T.F, T.TRYING, T.CANCELLED}),
    S.COMPLETED: frozenset({T.D, T.K, T.G, T.H, T.J}),
    S.CONFIRMED: frozenset({T.I}),
    S.ACCEPTED: frozenset({T.L, T.M}),
    S.TERMINATED: frozenset(),
}


class TransactionKind(Enum):
    INVITE_CLIENT = "INVITE client"
    NON_INVITE_CLIENT = "non-INVITE client"
    INVITE_SERVER = "INVITE server"
    NON_INVITE_SERVER = "non-INVITE server"

    @property
    def server(self) -> bool:
        return self in (TransactionKind.INVITE_SERVER, TransactionKind.NON_INVITE_SERVER)

    @staticmethod
    def of(method: str, server: bool) -> "TransactionKind":
        invite = method == "INVITE"
        if server:
            return TransactionKind.INVITE_SERVER if invite else TransactionKind.NON_INVITE_SERVER
        return TransactionKind.INVITE_CLIENT if invite else TransactionKind.NON_INVITE_CLIENT


# kind: (table, first state, actions on creation)
MACHINES: Final[dict[TransactionKind, tuple[Table, TransactionState, tuple[Action, ...]]]] = {
    TransactionKind.INVITE_CLIENT: (
        INVITE_CLIENT,
        S.CALLING,
        (Do.SEND_REQUEST, Start(T.A), Start(T.B)),
    ),
    TransactionKind.NON_INVITE_CLIENT: (
        NON_INVITE_CLIENT,
        S.TRYING,
        (Do.SEND_REQUEST, Start(T.E), Start(T.F)),
    ),
    TransactionKind.INVITE_SERVER: (INVITE_SERVER, S.PROCEEDING, (Start(T.TRYING),)),
    TransactionKind.NON_INVITE_SERVER: (NON_INVITE_SERVER, S.TRYING, ()),
}


# --- what a transaction asks of its owner --------------------------------------------------


@dataclass(frozen=True)
class SendBytes:
    data: bytes


@dataclass(frozen=True)
class Deliver:
    message: Request | Response


@dataclass(frozen=True)
class TimedOut:
    pass


@dataclass(frozen=True)
class TransportFailed:
    pass


Output = SendBytes | Deliver | TimedOut | TransportFailed


def event_of(code: int, tu: bool = False) -> TransactionEvent:
    """The event a response is: received by a client, or given by the TU to a server."""
    if code < 200:
        return E.TU_PROVISIONAL if tu else E.PROVISIONAL
    if code < 300:
        return E.TU_SUCCESS if tu else E.SUCCESS
    return E.TU_FAILURE if tu else E.FAILURE


@dataclass
class Transaction:
    """One machine: its table, its state, its timers, and the messages it resends."""

    kind: TransactionKind
    request: Request
    reliable: bool
    timers: SipTimers = field(default_factory=SipTimers)
    state: TransactionState = field(init=False)
    last_response: Response | None = field(init=False, default=None)
    _request_data: bytes = field(init=False, repr=False)
    _response_data: bytes | None = field(init=False, default=None, repr=False)
    _ack_data: bytes | None = field(init=False, default=None, repr=False)
    _due: dict[TimerName, float] = field(init=False, default_factory=dict)
    _interval: dict[TimerName, float] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._table, self.state, _ = MACHINES[self.kind]
        self._request_data = request_bytes(self.request)

    def start(self, now: float) -> list[Output]:
        """The actions on creation: a client sends its request and starts its timers."""
        return self._run(MACHINES[self.kind][2], None, now)

    def handle(
        self, event: TransactionEvent, now: float, message: Message | None = None
    ) -> list[Output]:
        """One event; `message` is the response received or given, or the ACK."""
        row = self._table.get((self.state, event))
        if row is None:
            return []  # absorbed
        return self._enter(row, message, now)

    def deadline(self) -> float | None:
        return min(self._due.values(), default=None)

    def tick(self, now: float) -> list[Output]:
        """Fire every timer due by `now`, earliest first."""
        outputs: list[Output] = []
        while (due := self._next_due(now)) is not None:
            outputs += self.fire(due, now)
        return outputs

    def fire(self, timer: TimerName, now: float) -> list[Output]:
        """One timer's row, whatever its due time (`tick` calls it when due)."""
        self._due.pop(timer, None)
        row = self._table.get((self.state, timer))
        return self._enter(row, None, now) if row is not None else []

    def pending(self) -> dict[TimerName, float]:
        """The running timers and when each fires."""
        return dict(self._due)

    @property
    def terminated(self) -> bool:
        return self.state is S.TERMINATED

    # --- inside ------------------------------------------------------------------------

    def _next_due(self, now: float) -> TimerName | None:
        due = [(at, timer.value, timer) for timer, at in self._due.items() if at <= now]
        return min(due)[2] if due else None

    def _enter(self, row: Row, message: Message | None, now: float) -> list[Output]:
        self.state = row.next
        for timer in list(self._due):
            if timer not in RUNS_IN[row.next]:
                del self._due[timer]
        outputs = self._run(row.do, message, now)
        # Zero timers (D, I, J, K on a reliable transport) end the transaction at once.
        return outputs + self.tick(now)

    def _run(
        self, actions: tuple[Action, ...], message: Message | None, now: float
    ) -> list[Output]:
        outputs: list[Output] = []
        for action in actions:
            if isinstance(action, Do):
                outputs += self._do(action, message)
            else:
                self._time(action, now)
        return outputs

    def _do(self, action: Do, message: Message | None) -> list[Output]:
        return _DOINGS[action](self, message)

    def _send_request(self, message: Message | None) -> list[Output]:
        return [SendBytes(self._request_data)]

    def _send_ack(self, message: Message | None) -> list[Output]:
        if self._ack_data is None and isinstance(message, Response):
            self._ack_data = request_bytes(ack_for(self.request, message))
        return [SendBytes(self._ack_data)] if self._ack_data else []

    def _send_response(self, message: Message | None) -> list[Output]:
        if not isinstance(message, Response):
            return []
        self.last_response, self._response_data = message, response_bytes(message)
        return [SendBytes(self._response_data)]

    def _send_trying(self, message: Message | None) -> list[Output]:
        return self._send_response(trying(self.request))

    def _resend_response(self, message: Message | None) -> list[Output]:
        return [SendBytes(self._response_data)] if self._response_data else []

    def _deliver(self, message: Message | None) -> list[Output]:
        return [Deliver(message)] if message is not None else []

    def _time_out(self, message: Message | None) -> list[Output]:
        return [TimedOut()]

    def _fail(self, message: Message | None) -> list[Output]:
        return [TransportFailed()]

    def _time(self, action: Start | Again | Stop, now: float) -> None:
        timer, spec = action.timer, SPECS[action.timer]
        if isinstance(action, Stop):
            self._due.pop(timer, None)
            return
        if isinstance(action, Start):
            interval = self._first(spec)
        elif action.at_t2:
            interval = self.timers.t2
        else:
            cap = spec.cap(self.timers) if spec.cap else float("inf")
            interval = min(2 * self._interval.get(timer, spec.first(self.timers)), cap)
        if interval is None:
            return
        self._interval[timer] = interval
        self._due[timer] = now + interval

    def _first(self, spec: TimerSpec) -> float | None:
        if self.reliable and spec.reliable is Reliable.OFF:
            return None
        if self.reliable and spec.reliable is Reliable.ZERO:
            return 0.0
        return spec.first(self.timers)


_DOINGS: Final[dict[Do, Callable[[Transaction, Message | None], list[Output]]]] = {
    Do.SEND_REQUEST: Transaction._send_request,
    Do.SEND_ACK: Transaction._send_ack,
    Do.SEND_RESPONSE: Transaction._send_response,
    Do.RESEND_RESPONSE: Transaction._resend_response,
    Do.SEND_TRYING: Transaction._send_trying,
    Do.DELIVER: Transaction._deliver,
    Do.TIME_OUT: Transaction._time_out,
    Do.FAIL: Transaction._fail,
}


# --- matching (§17.1.3, §17.2.3) -----------------------------------------------------------

MAGIC: Final = "z9hG4bK"  # RFC 3261's branch prefix: the branch alone names the transaction
DEFAULT_PORTS: Final = {"TLS": 5061, "WSS": 443, "WS": 80}


@dataclass(frozen=True)
class TransactionId:
    """What a message shares with the request that made its transaction; matching a
    message is computing its id. `method` is the creating request's: INVITE for an ACK
    (CANCEL keeps its own: it is a transaction of its own)."""

    server: bool
    branch: str
    method: str
    sent_by: str = ""  # server side: the top Via's host:port

    def cancelled(self) -> "TransactionId":
        """The INVITE transaction this CANCEL's id points at."""
        return replace(self, method="INVITE")


def client_id(message: Message) -> TransactionId | None:
    """§17.1.3: the top Via's branch and the CSeq method (a response, or our request)."""
    via = _top_via(message)
    cseq = parse_cseq(message.headers.get("CSeq") or "")
    if via is None or cseq is None or not via.params.get("branch"):
        return None
    return TransactionId(False, via.params["branch"], cseq[1])


def server_id(request: Request) -> TransactionId | None:
    """§17.2.3: the branch, sent-by and method; without the magic cookie (RFC 2543 peers,
    RFC 4475 §3.2.1's bare cookie) the fallback fields stand in for the branch."""
    via = _top_via(request)
    if via is None:
        return None
    method = "INVITE" if request.method == "ACK" else request.method
    port = via.port or DEFAULT_PORTS.get(via.transport, 5060)
    sent_by = f"{via.host.lower()}:{port}"
    branch = via.params.get("branch", "")
    if not (branch.startswith(MAGIC) and len(branch) > len(MAGIC)):
        branch = _rfc2543_key(request)
    return TransactionId(True, branch, method, sent_by)


def _rfc2543_key(request: Request) -> str:
    """§17.2.3's fallback: Request-URI, From tag, Call-ID, CSeq number and top Via. The
    To tag is left out: an INVITE has none yet and its ACK carries ours, so that a
    non-2xx ACK and a CANCEL find the INVITE by one lookup."""
    headers = request.headers
    sender = parse_name_addr(headers.get("From") or "")
    number = (headers.get("CSeq") or "").split()[:1]
    fields = (
        request.uri,
        sender.params.get("tag", "") if sender else "",
        headers.get("Call-ID") or "",
        *number,
        headers.get_all("Via")[0],
    )
    return "2543 " + "\n".join(fields)


def _top_via(message: Message) -> Via | None:
    vias = message.headers.get_all("Via")
    return parse_via(vias[0]) if vias else None


# --- messages a transaction builds -----------------------------------------------------------


def ack_for(invite: Request, response: Response) -> Request:
    """§17.1.1.3: the ACK for a non-2xx final response, within the INVITE transaction:
    the INVITE's top Via, Route, From, Call-ID and CSeq number; the response's To."""
    return _beside(invite, "ACK", response.headers.get("To") or "")


def cancel_for(invite: Request) -> Request:
    """§9.1: a CANCEL is its INVITE's Request-URI, top Via (same branch), Route, From, To,
    Call-ID and CSeq number."""
    return _beside(invite, "CANCEL", invite.headers.get("To") or "")


def _beside(invite: Request, method: str, to: str) -> Request:
    """A request that goes where the INVITE went, as the INVITE's transaction: its
    Request-URI, top Via, Route, From, Call-ID and CSeq number, with `method` and `to`."""
    first_via = invite.headers.get_all("Via")[0]
    number = (invite.headers.get("CSeq") or "").split()[0]
    routes = [("Route", route) for route in invite.headers.get_all("Route")]
    headers = (
        ("Via", first_via),
        *routes,
        ("Max-Forwards", "70"),
        ("From", invite.headers.get("From") or ""),
        ("To", to),
        ("Call-ID", invite.headers.get("Call-ID") or ""),
        ("CSeq", f"{number} {method}"),
    )
    return Request(method, invite.uri, Headers(headers))


def trying(request: Request) -> Response:
    """§17.2.1: a 100 Trying, its To without a tag, Timestamp echoed (§8.2.6.1)."""
    stamp = request.headers.get("Timestamp")
    return response_to(request, 100, "Trying", extra=[("Timestamp", stamp)] if stamp else ())


# --- the UAS core's 2xx retransmissions (§13.3.1.4) ------------------------------------------


class Due(Enum):
    NOTHING = "nothing"
    RETRANSMIT = "retransmit"
    GIVE_UP = "give up"  # no ACK in 64·T1: confirm the dialog, then end it with BYE


@dataclass
class TwoXxRetransmissions:
    """When the UAS core sends its 2xx again until the ACK: T1, 2·T1, ... capped at T2,
    and for at most 64·T1. Over TCP/TLS too: the ACK is end to end, and a proxy between
    may have dropped it."""

    sent: float
    timers: SipTimers = field(default_factory=SipTimers)

    def __post_init__(self) -> None:
        self._interval = self.timers.t1
        self._next = self.sent + self._interval
        self._gives_up = self.sent + 64 * self.timers.t1

    def deadline(self) -> float:
        return min(self._next, self._gives_up)

    def tick(self, now: float) -> Due:
        if now >= self._gives_up:
            return Due.GIVE_UP
        if now < self._next:
            return Due.NOTHING
        self._interval = min(2 * self._interval, self.timers.t2)
        self._next = now + self._interval
        return Due.RETRANSMIT
