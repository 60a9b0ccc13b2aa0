"""Typed events out of a device: what changed, handed at once to whoever subscribed.

The registration (the agent), the handset (the phone) and the stored settings (the
device) each get one `Outbox` at construction and emit into it where their state
changes; the live events (`events.py`) are one subscriber, a door-open flow may be
another. Nothing is queued: `emit` calls each subscriber in turn, on the emitter's own
stack, so a subscriber sees the change before the emitter goes on and nothing can pile
up; a subscriber must return at once (publish, set a future), never wait.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from intercom_sip.calls import CallRecord, CallStatus
from intercom_sip.contract.settings import Settings
from intercom_sip.loglimit import LogLimit
from intercom_sip.sip.callevents import DtmfReceived
from intercom_sip.sip.registration import Status

__all__ = [
    "MAX_SUBSCRIBERS",
    "CallChanged",
    "CallEnded",
    "DeviceEvent",
    "DtmfReceived",
    "DtmfSent",
    "Outbox",
    "RegistrationChanged",
    "SettingsSaved",
]

log = logging.getLogger(__name__)

MAX_SUBSCRIBERS: Final = 8  # the hub, a flow or two: a bound, not a registry
TOO_MANY_SUBSCRIBERS: Final = "too many subscribers to one outbox"


@dataclass(frozen=True)
class RegistrationChanged:
    """The registration's status (contract §5 without `sip_status`) is now `status`."""

    status: Status


@dataclass(frozen=True)
class CallChanged:
    """The call's status (§6.1) is now `status`; `idle` once a call has ended."""

    status: CallStatus


@dataclass(frozen=True)
class CallEnded:
    """A call-log row was made (§6.8): the call `record.id` ended, or an INVITE was
    refused without becoming the call (busy, disabled...)."""

    record: CallRecord


@dataclass(frozen=True)
class DtmfSent:
    """The handset took these digits to send in the call (RFC 4733 or SIP INFO)."""

    digits: str


@dataclass(frozen=True)
class SettingsSaved:
    """The settings were made durable and handed to the agent."""

    settings: Settings


# `DtmfReceived(digits)` is the handset's own output, handed on as it is: one fact, one type.
DeviceEvent = (
    RegistrationChanged | CallChanged | CallEnded | DtmfReceived | DtmfSent | SettingsSaved
)
Subscriber = Callable[[DeviceEvent], None]


class Outbox:
    """A bounded, synchronous fan-out: at most `cap` subscribers, called in order."""

    def __init__(self, cap: int = MAX_SUBSCRIBERS) -> None:
        self._cap = cap
        self._subscribers: list[Subscriber] = []
        self._errors = LogLimit(log, per_window=3)

    def subscribe(self, subscriber: Subscriber) -> None:
        """Raises ValueError beyond the cap: a wiring bug, found at start."""
        if len(self._subscribers) >= self._cap:
            raise ValueError(TOO_MANY_SUBSCRIBERS)
        self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    def emit(self, event: DeviceEvent) -> None:
        """Hand `event` to every subscriber; one that fails is logged, the rest still get
        it, and the emitter (a SIP task, an HTTP request) never sees the failure."""
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:
                name = type(event).__name__
                self._errors.log(
                    name, logging.ERROR, "a subscriber failed on %s", name, exc_info=True
                )
