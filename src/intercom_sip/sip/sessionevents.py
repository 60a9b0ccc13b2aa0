"""The INVITE session's values (`session.py`): its role, states and event kinds, the
inputs it takes beside the handset's (`callevents.py`), and the notes it gives its owner.
All frozen but the enums."""

from dataclasses import dataclass
from enum import Enum, auto

from intercom_sip.sip.callevents import Answer, Dtmf, Hangup, Outcome, Output
from intercom_sip.sip.message import Request
from intercom_sip.sip.transactions import TransactionId

DialogId = tuple[str, str]  # (Call-ID, our tag): what every request of the peer names


class Role(Enum):
    INCOMING = "in"
    OUTGOING = "out"


class SessionState(Enum):
    RINGING = "ringing"  # in: their INVITE answered 180; ours to answer
    CALLING = "calling"  # out: our INVITE sent, no final response yet
    ANSWERED = "answered"  # a 2xx of ours (the first, or a re-INVITE's) awaits its ACK
    CONFIRMED = "confirmed"  # the call is up, no offer of theirs unfinished
    TERMINATING = "terminating"  # out: CANCEL sent; a 2xx that crossed it is ACKed, BYEd
    ENDED = "ended"


class SessionEvent(Enum):
    # the peer's requests in the dialog (by method, after the CSeq check)
    ACK = auto()  # the ACK of the 2xx we are sending again
    STRAY_ACK = auto()  # an ACK of nothing we wait for
    BYE = auto()
    INFO = auto()
    OPTIONS = auto()
    REINVITE = auto()  # with an offer we can answer, or none
    REINVITE_REFUSED = auto()  # with an offer we cannot take (400, 488)
    UPDATE = auto()  # with an offer we can answer
    UPDATE_REFUSED = auto()
    UPDATE_REFRESH = auto()  # without a body: nothing changes (RFC 3311)
    OTHER_REQUEST = auto()  # a method we do not take in a dialog: 405
    BAD_SEQUENCE = auto()  # a CSeq out of order, or unreadable (§12.2.2)
    CANCELLED = auto()  # the core answered their CANCEL
    # what became of our INVITE
    PROVISIONAL = auto()
    SUCCESS = auto()
    SUCCESS_UNUSABLE = auto()  # a 2xx that makes no dialog (no To-tag...)
    CHALLENGE = auto()  # 401/407
    REDIRECT = auto()  # 301/302
    REFUSED = auto()  # any other final response
    INVITE_FAILED = auto()  # timed out, transport error, overload
    # what became of our INFO
    INFO_DONE = auto()
    INFO_GONE = auto()  # 408/481: the dialog is gone (§12.2.1.2)
    INFO_FAILED = auto()
    STRAY = auto()  # a response or failure of no transaction of this session
    # ours
    ANSWER = auto()
    AUTO_ANSWER = auto()
    HANGUP = auto()
    END = auto()
    GIVE_UP = auto()
    DTMF = auto()
    RETRANSMIT = auto()


# --- the inputs of a session beside the handset's ------------------------------------------


@dataclass(frozen=True)
class PeerRequest:
    """A request of the peer's in the dialog; `tag` is the To-tag of a 481 or 405."""

    request: Request
    transaction_id: TransactionId
    tag: str = ""


@dataclass(frozen=True)
class PeerAck:
    """An ACK in the dialog (it has no transaction, and is never answered)."""

    request: Request


@dataclass(frozen=True)
class AutoAnswer:
    """Answer now, the media held until the ACK that carries our To-tag (§6.9)."""


@dataclass(frozen=True)
class End:
    """End the session from our side, as its state allows: a final response while
    ringing (603 when declined, else 480), CANCEL while calling, BYE when answered."""

    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Retransmit:
    """The 2xx timer is due."""


# --- the notes for the owner -----------------------------------------------------------------


@dataclass(frozen=True)
class Connected:
    """The call is answered: our 2xx went out, or theirs came in."""


@dataclass(frozen=True)
class Over:
    """The session ended: for the call log."""

    reason: str
    code: int | None = None
    phrase: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class GiveUp:
    """An input: the session is over without a message of ours (our INVITE failed);
    `over` says why."""

    over: Over


SessionInput = (
    PeerRequest
    | PeerAck
    | Outcome
    | Answer
    | AutoAnswer
    | Hangup
    | End
    | GiveUp
    | Dtmf
    | Retransmit
)
Note = Connected | Over
Steps = list[Output | Note]
