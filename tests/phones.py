"""A fake handset with the states of contract §6 and no SIP: tests ring it and read what
the API asked of it."""

import dataclasses

from intercom_sip.agent.outbox import CallChanged, Outbox
from intercom_sip.agent.phone import (
    BUSY,
    NO_CALL,
    NOT_REGISTERED,
    Busy,
    NoCall,
    NotRegistered,
)
from intercom_sip.calls import IDLE, CallStatus, RtpFigures
from intercom_sip.contract.dialing import DialTarget

REALM = "example.com"
STARTED = 1764441600


class FakePhone:
    """Each change of `current` goes to `outbox` as `CallChanged`, as the real phone's do."""

    def __init__(self, registered: bool = True, outbox: Outbox | None = None) -> None:
        self.registered = registered
        self.outbox = outbox or Outbox()
        self._current = IDLE
        self.dialled: list[DialTarget] = []
        self.sent_dtmf: list[str] = []
        self.auto_answer: list[bool] = []  # every set_auto_answer, in order

    @property
    def current(self) -> CallStatus:
        return self._current

    @current.setter
    def current(self, status: CallStatus) -> None:
        if status != self._current:
            self._current = status
            self.outbox.emit(CallChanged(status))

    def ring(self, remote: str = "sip:100@example.com") -> CallStatus:
        self.current = CallStatus("ringing", "c-1", "in", remote, STARTED)
        return self.current

    def status(self) -> CallStatus:
        return self.current

    def answer(self) -> CallStatus | NoCall:
        if self.current.state != "ringing":
            return NO_CALL
        self.current = dataclasses.replace(
            self.current,
            state="active",
            answered=STARTED + 2,
            ends_at=STARTED + 122,
            duration=0,
            codec="PCMU",
            srtp=False,
            dtmf_received="",
            rtp=RtpFigures(0, 0, 0, 0.0),
        )
        return self.current

    def hangup(self) -> CallStatus | NoCall:
        if self.current is IDLE:
            return NO_CALL
        self.current = IDLE
        return IDLE

    def dial(self, target: DialTarget) -> CallStatus | Busy | NotRegistered:
        if self.current is not IDLE:
            return BUSY
        if target.needs_registration and not self.registered:
            return NOT_REGISTERED
        self.dialled.append(target)
        self.current = CallStatus("calling", "c-2", "out", target.uri(REALM), STARTED)
        return self.current

    def dtmf(self, digits: str) -> CallStatus | NoCall:
        if self.current.state != "active":
            return NO_CALL
        self.sent_dtmf.append(digits)
        return self.current

    def set_auto_answer(self, enabled: bool) -> None:
        self.auto_answer.append(enabled)
