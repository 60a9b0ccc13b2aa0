"""What the API needs of the handset (contract §6): the refusals as data, and the `Phone`
Protocol that the SIP side implements (its values are `calls.py`'s).

Pure: no I/O. The real phone (the call machine and its asyncio shell) lives elsewhere;
`NoPhone` stands in until it is plugged in.
"""

from dataclasses import dataclass
from typing import ClassVar, Final, Protocol

from intercom_sip import errors
from intercom_sip.calls import IDLE, CallStatus
from intercom_sip.contract.dialing import DialTarget

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
