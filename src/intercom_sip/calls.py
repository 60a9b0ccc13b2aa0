"""A call's values, one of each (CONTRACT §6.1, §6.8): its status, its record in the call
log, and its RTP figures. The handset makes the status and the record, bounded; the
phone's shell adds the RTP figures; the store keeps the records; `api/calls.py` makes
what a client sees of them. Pure and frozen."""

from dataclasses import dataclass, field
from typing import Final

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

# Bounds on what one call holds: the remote URI comes from a bounded SIP message, but the
# digits received grow with the call; a row of the log stays small whatever a peer sends.
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


IDLE: Final = CallStatus("idle")


@dataclass(frozen=True)
class CallRecord:
    """One ended call, as the log keeps it (§6.8): the status keys without `state` and
    `ends_at`, plus when and why it ended and the SIP final response that ended it.
    `detail` is for the service's log line only: never stored, never compared."""

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
    detail: str = field(default="", compare=False)


def bounded_remote(remote: str) -> str:
    return remote[:MAX_REMOTE]


def bounded_digits(digits: str) -> str | None:
    """The last digits received, None when none."""
    return digits[-MAX_DTMF_RECEIVED:] or None


def bounded_reason(reason: str | None) -> str | None:
    return reason[:MAX_REASON] if reason else None
