"""The call machine's values (CONTRACT §6): its options, inputs and outputs (the call
status and record they carry are `calls.py`'s; the core's events about our transactions
are inputs as they are). All frozen; `call.py` is the machine."""

from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from intercom_sip.calls import CallRecord, CallStatus
from intercom_sip.sip import digest
from intercom_sip.sip.callflow import Callee, Here
from intercom_sip.sip.core import (
    CancelReceived,
    Channel,
    ResponseReceived,
    TransactionTimedOut,
    TransportError,
)
from intercom_sip.sip.message import Request, Response
from intercom_sip.sip.negotiation import Local, Negotiated
from intercom_sip.sip.transactions import SipTimers, TransactionId

# The client-facing errors of §6 (409s), and ours for DTMF the machine cannot take.
NO_CALL: Final = "No call"
BUSY: Final = "Busy"
WRONG_DIGITS: Final = "Wrong digits"
TOO_MANY_DIGITS: Final = "Too many DTMF digits waiting"
MAX_DIGITS: Final = 32  # per `call/dtmf` request (§6.5)
MAX_ABANDONED: Final = 4  # cancelled INVITEs whose late 2xx we still ACK and BYE
MAX_REDIRECTS: Final = 3  # 301/302s followed per outgoing call (§6.10)


class Phase(Enum):
    IDLE = "idle"
    RINGING = "ringing"
    CALLING = "calling"
    ACTIVE = "active"


class Timer(Enum):
    RING = "ring"  # an incoming call unanswered: 480 (§6.2)
    AUTO_ANSWER = "auto answer"  # §6.4
    NO_ANSWER = "no answer"  # an outgoing call unanswered: CANCEL
    RETRANSMIT = "2xx retransmit"  # our 2xx again until the ACK; give up: BYE
    CALL_TIMEOUT = "call timeout"  # answered + `timeout`: BYE (§6.6)
    MEDIA = "media"  # no RTP this long: BYE `no media` (§6.6)


@dataclass(frozen=True)
class Options:
    """Service options (§6.2-6.6); the tests shorten them."""

    ring_time: float = 60.0
    dial_time: float = 60.0  # ours: how long an outgoing call may ring before CANCEL
    auto_answer_delay: float = 1.0
    media_timeout: float = 30.0
    allow_direct: bool = False  # --direct-calls: INVITEs to our addresses ring (§6.2)
    timers: SipTimers = field(default_factory=SipTimers)  # T1, T2 of the 2xx retransmissions
    user_agent: str = "intercom-sip"
    max_dtmf_kept: int = 256  # characters of `dtmf_received`; the latest are kept
    max_dtmf_waiting: int = 64  # digits queued for INFO
    max_auth: int = 2  # challenges answered per outgoing call (once per nonce)


DEFAULT_OPTIONS: Final = Options()


# --- inputs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """A request for our user (the core's `RequestReceived`, which judged its source,
    §6.9); `direct`: a direct call's (§6.2); `here`: our Contact, Via and RTP port."""

    request: Request
    transaction_id: TransactionId | None  # None for an ACK to a 2xx
    flow: Channel
    here: Here
    direct: bool = False


@dataclass(frozen=True)
class NotStarted:
    """The core would not start a client transaction of ours (`core.request` gave None:
    too many are open). No core event says so: the shell feeds this back itself."""

    transaction_id: TransactionId


# The core's events about a transaction of ours reach the machine as they are; a client
# transaction that ended without a final response is one of `Failure`, and the call log's
# `detail` names which.
Failure = TransactionTimedOut | TransportError | NotStarted
CAUSES: Final[dict[type, str]] = {
    TransactionTimedOut: "timeout",
    TransportError: "transport error",
    NotStarted: "overload",
}
Outcome = ResponseReceived | CancelReceived | Failure


def transaction_of(event: Outcome) -> TransactionId:
    """The transaction `event` is about (a CANCEL's is the INVITE it cancelled)."""
    return event.invite_id if isinstance(event, CancelReceived) else event.transaction_id


@dataclass(frozen=True)
class Answer:
    """`POST call/answer`."""


@dataclass(frozen=True)
class Hangup:
    """`POST call/hangup`: decline (603), CANCEL or BYE by phase."""


@dataclass(frozen=True)
class Dial:
    """`POST call/dial`: the target, the flow to send on (to the proxy, or straight to a
    direct target), our place on that flow, our address of record and credentials."""

    target: Callee
    flow: Channel
    here: Here
    aor: str
    credentials: digest.Credentials | None = None
    route: tuple[str, ...] = ()  # a preloaded route (an outbound proxy), `<sip:...;lr>`


@dataclass(frozen=True)
class Dtmf:
    """`POST call/dtmf`."""

    digits: str


@dataclass(frozen=True)
class RtpArrived:
    """The media side heard RTP (call it at most every second or so): the media timer
    starts again."""


@dataclass(frozen=True)
class DtmfHeard:
    """Digits the media side decoded from RFC 4733 telephone-events."""

    digits: str


@dataclass(frozen=True)
class SettingsChanged:
    """The applied settings that concern calls; give all three at every change."""

    enabled: bool
    timeout: int
    auto_answer: bool


@dataclass(frozen=True)
class Shutdown:
    """SIGTERM: end any call, take no new one."""


@dataclass(frozen=True)
class FlowMoved:
    """The call's TCP/TLS flow was gone and the shell opened `new` to the dialog's next
    hop (RFC 3261 §18.1.1): the call's requests go there from now on."""

    old: Channel
    new: Channel


Input = (
    Received
    | ResponseReceived
    | CancelReceived
    | TransactionTimedOut
    | TransportError
    | NotStarted
    | Answer
    | Hangup
    | Dial
    | Dtmf
    | RtpArrived
    | DtmfHeard
    | SettingsChanged
    | Shutdown
    | FlowMoved
)

FACTORY_SETTINGS: Final = SettingsChanged(enabled=False, timeout=120, auto_answer=False)


# --- outputs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Respond:
    """`core.respond(transaction_id, response, now)`."""

    transaction_id: TransactionId
    response: Response


@dataclass(frozen=True)
class SendRequest:
    """`core.request(request, flow, now)`; the Via carries the branch already, so the
    transaction's id is `transaction_id`. If the core returns None, feed back
    `NotStarted(transaction_id)`."""

    request: Request
    flow: Channel
    transaction_id: TransactionId


@dataclass(frozen=True)
class SendCancel:
    """`core.cancel(transaction_id, now)`."""

    transaction_id: TransactionId


@dataclass(frozen=True)
class SendAck:
    """`core.send(request, flow)`: the ACK for a 2xx, outside any transaction."""

    request: Request
    flow: Channel


@dataclass(frozen=True)
class StartMedia:
    """Open the RTP session on `local` towards what was agreed."""

    local: Local
    media: Negotiated


@dataclass(frozen=True)
class UpdateMedia:
    """A re-INVITE or UPDATE changed the session (hold, a new address...)."""

    media: Negotiated


@dataclass(frozen=True)
class StopMedia:
    pass


@dataclass(frozen=True)
class SendDtmf:
    """Send these digits as RFC 4733 telephone-events (negotiated in the call)."""

    digits: str


@dataclass(frozen=True)
class Refused:
    """An API input that cannot be done now; `error` is the 409 body's text."""

    error: str


@dataclass(frozen=True)
class Ringing:
    status: CallStatus


@dataclass(frozen=True)
class Calling:
    status: CallStatus


@dataclass(frozen=True)
class Answered:
    status: CallStatus


@dataclass(frozen=True)
class Ended:
    """The current call ended; `record` goes to the call log."""

    record: CallRecord


@dataclass(frozen=True)
class Rejected:
    """An INVITE refused without becoming the call (busy, disabled, 488...): for the
    call log too, as §6.8's `busy`, `disabled` or `failed`."""

    record: CallRecord


@dataclass(frozen=True)
class DtmfReceived:
    digits: str


Output = (
    Respond
    | SendRequest
    | SendCancel
    | SendAck
    | StartMedia
    | UpdateMedia
    | StopMedia
    | SendDtmf
    | Refused
    | Ringing
    | Calling
    | Answered
    | Ended
    | Rejected
    | DtmfReceived
)
Outputs = list[Output]
