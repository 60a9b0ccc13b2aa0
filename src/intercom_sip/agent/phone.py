"""What the API needs of the handset (contract §6): the call status and the call log as
values, the refusals as data, and the `Phone` Protocol that the SIP side implements.

Pure: no I/O. The real phone (the call machine and its asyncio shell) lives elsewhere;
`NoPhone` stands in until it is plugged in.
"""

from dataclasses import dataclass
from typing import Any, ClassVar, Final, Protocol

from intercom_sip import errors
from intercom_sip.contract.dialing import DialTarget

STATES: Final = ("idle", "ringing", "calling", "active")
DIRECTIONS: Final = ("in", "out")
END_REASONS: Final = (
    "remote hangup",
    "local hangup",
    "timeout",
    "cancelled",
    "declined",
    "busy",
    "no answer",
    "no media",
    "failed",
    "disabled",
    "shutdown",
)
LOG_KEEP: Final = 1000  # calls in the log; the oldest go first (§6.8)

# Bounds on what one logged call holds: the remote URI comes from a bounded SIP message,
# but the digits received grow with the call; a row of the log stays small whatever a
# peer sends.
MAX_REMOTE: Final = 512
MAX_DTMF_RECEIVED: Final = 256  # the last ones are kept
MAX_REASON: Final = 128


@dataclass(frozen=True)
class RtpFigures:
    """The §6.1 `rtp` object: packets sent and received, lost, jitter (RFC 3550 A.8)."""

    sent: int
    received: int
    lost: int
    jitter_ms: float


@dataclass(frozen=True)
class CallStatus:
    """The §6.1 call status; every field but `state` is None when idle."""

    state: str
    id: str | None = None
    direction: str | None = None
    remote: str | None = None
    started: int | None = None  # Unix time
    answered: int | None = None  # Unix time of the 200 OK
    ends_at: int | None = None  # answered + timeout (§6.6)
    duration: int | None = None  # seconds since answered
    codec: str | None = None
    srtp: bool | None = None
    dtmf_received: str | None = None
    rtp: RtpFigures | None = None

    def to_view(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "id": self.id,
            "direction": self.direction,
            "remote": self.remote,
            "started": self.started,
            "answered": self.answered,
            "ends_at": self.ends_at,
            "duration": self.duration,
            "codec": self.codec,
            "srtp": self.srtp,
            "dtmf_received": self.dtmf_received,
            "rtp": _rtp_view(self.rtp),
        }


IDLE: Final = CallStatus("idle")


@dataclass(frozen=True)
class CallRecord:
    """One ended call, as the log keeps it (§6.8): the status keys without `state` and
    `ends_at`, plus when and why it ended, and the SIP final response that ended it."""

    id: str
    direction: str
    remote: str
    started: int
    ended: int
    end_reason: str
    answered: int | None = None
    duration: int | None = None  # ended - answered; None when never answered
    codec: str | None = None
    srtp: bool | None = None
    dtmf_received: str | None = None
    rtp: RtpFigures | None = None
    code: int | None = None
    reason: str | None = None

    def to_view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "direction": self.direction,
            "remote": self.remote,
            "started": self.started,
            "answered": self.answered,
            "duration": self.duration,
            "codec": self.codec,
            "srtp": self.srtp,
            "dtmf_received": self.dtmf_received,
            "rtp": _rtp_view(self.rtp),
            "ended": self.ended,
            "end_reason": self.end_reason,
            "code": self.code,
            "reason": self.reason,
        }


def _rtp_view(rtp: RtpFigures | None) -> dict[str, Any] | None:
    if rtp is None:
        return None
    return {
        "sent": rtp.sent,
        "received": rtp.received,
        "lost": rtp.lost,
        "jitter_ms": rtp.jitter_ms,
    }


# --- refusals: errors as data, each with the 409 text it answers -----------------------------


@dataclass(frozen=True)
class Refusal:
    message: ClassVar[str]


@dataclass(frozen=True)
class NoCall(Refusal):
    """No call, or a call in a state that does not allow the action."""

    message: ClassVar[str] = errors.NO_CALL


@dataclass(frozen=True)
class Busy(Refusal):
    """A call is already up: one handset, one call."""

    message: ClassVar[str] = errors.BUSY


@dataclass(frozen=True)
class NotRegistered(Refusal):
    """Dialling through the proxy needs SIP enabled and a registration."""

    message: ClassVar[str] = errors.NOT_REGISTERED


NO_CALL: Final = NoCall()
BUSY: Final = Busy()
NOT_REGISTERED: Final = NotRegistered()


class Phone(Protocol):
    """The handset as the API drives it. Every method returns at once: the SIP work
    (INVITE, CANCEL, BYE, DTMF) goes on in the phone's own time, and the answer is the
    call status right after the action was taken, or why it was refused."""

    def status(self) -> CallStatus: ...

    def answer(self) -> CallStatus | NoCall:
        """Answer the ringing incoming call."""

    def hangup(self) -> CallStatus | NoCall:
        """Ringing incoming: 603; calling: CANCEL; active: BYE (§6.4)."""

    def dial(self, target: DialTarget) -> CallStatus | Busy | NotRegistered:
        """Call the target (§6.3); the status answered is `calling`."""

    def dtmf(self, digits: str) -> CallStatus | NoCall:
        """Send these digits (already checked: 1..32 of 0-9*#A-D) in the active call."""

    def set_auto_answer(self, enabled: bool) -> None:
        """Answer incoming calls by themselves from now on, or stop doing so."""


class NoPhone:
    """The phone until a real one is plugged in: always idle, dials nowhere."""

    def status(self) -> CallStatus:
        return IDLE

    def answer(self) -> CallStatus | NoCall:
        return NO_CALL

    def hangup(self) -> CallStatus | NoCall:
        return NO_CALL

    def dial(self, target: DialTarget) -> CallStatus | Busy | NotRegistered:
        del target
        return NOT_REGISTERED

    def dtmf(self, digits: str) -> CallStatus | NoCall:
        del digits
        return NO_CALL

    def set_auto_answer(self, enabled: bool) -> None:
        del enabled
