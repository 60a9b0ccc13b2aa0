"""Live events (contract §8): a hub that fans each change out to the open event streams.

What waits for a stream is bounded by construction: the latest frame of each kind, no
more. A slow reader skips states it had no time to read and always gets the last one, so
it loses no state and its backlog never grows; coalescing is also what a status panel
wants. Changes come as typed events from the device's outbox (`agent/outbox.py`): the
settings from the device after each durable change, the registration from the agent, the
call from the phone; `Feed` turns each into a frame at once. Nothing looks for changes:
with no call, nothing here runs between events but each open stream's keep-alive.
"""

import asyncio
import contextlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from intercom_sip.agent import status
from intercom_sip.agent.outbox import CallChanged, DeviceEvent, RegistrationChanged, SettingsSaved
from intercom_sip.api.calls import status_view
from intercom_sip.contract.settings import to_view
from intercom_sip.device import Device

KINDS: Final = ("registration", "call", "settings")
MAX_STREAMS: Final = 32
MAX_PER_TOKEN: Final = 4  # a 5th stream of one token ends its oldest: one login cannot take all
KEEPALIVE: Final = 10.0  # seconds between comments on a quiet stream (§8: at most 15)
# Keys of the call that change on their own, all the time (packet counters, the age of
# the call): a change of those alone is published once a second at most, while a call is up.
QUIET_KEYS: Final = frozenset({"rtp", "duration"})
QUIET_PERIOD: Final = 1.0
COMMENT: Final = b": keep-alive\n\n"

Read = Callable[[], Mapping[str, Any]]


def frame(kind: str, payload: Mapping[str, Any]) -> bytes:
    """One server-sent event; JSON without indent has no line break, so one data line."""
    data = json.dumps(payload, separators=(",", ":")).encode()
    return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


class Subscription:
    """One open stream: what it has yet to send, the latest frame of each kind."""

    def __init__(
        self,
        token: str,
        keepalive: float,
        closed: Callable[["Subscription"], None],
        authorized: Callable[[str], bool] | None = None,
    ) -> None:
        self._token = token  # a secret: never in repr
        self._keepalive, self._closed = keepalive, closed
        self._authorized = authorized
        self._pending: dict[str, bytes] = {}
        self._wake = asyncio.Event()
        self.ended = False

    def __repr__(self) -> str:
        return f"<Subscription: {len(self._pending)} pending{', ended' if self.ended else ''}>"

    def holds(self, authorized: Callable[[str], bool]) -> bool:
        return authorized(self._token)

    def token_is(self, token: str) -> bool:
        return hmac.compare_digest(self._token, token)

    def offer(self, kind: str, data: bytes) -> None:
        self._pending.pop(kind, None)  # re-inserted last: frames go out in change order
        self._pending[kind] = data
        self._wake.set()

    def take(self) -> bytes:
        data = b"".join(self._pending.values())
        self._pending.clear()
        return data

    def end(self) -> None:
        """End the stream (its token ended, the client left, the server stops)."""
        if not self.ended:
            self.ended = True
            self._closed(self)
        self._wake.set()

    async def next(self) -> bytes | None:
        """What to send next: events, a comment after `keepalive` seconds of quiet, or
        None once the stream has ended. A quiet stream looks at its token before each
        comment: one that expired ends the stream then (a logout or a new password ends
        it at once, through `Hub.sweep`)."""
        if not (self._pending or self.ended):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._keepalive)
        self._wake.clear()
        quiet = not (self._pending or self.ended)
        if quiet and self._authorized is not None and not self.holds(self._authorized):
            self.end()
        if self.ended:
            return None
        return self.take() or COMMENT


class Hub:
    """The open streams, at most `cap`; `sources` read the current state of each kind."""

    def __init__(
        self,
        sources: Mapping[str, Read],
        authorized: Callable[[str], bool],
        cap: int = MAX_STREAMS,
        keepalive: float = KEEPALIVE,
    ) -> None:
        self._sources, self._authorized = sources, authorized
        self._cap, self._keepalive = cap, keepalive
        self._streams: dict[Subscription, None] = {}
        self._last: dict[str, bytes] = {}

    def __len__(self) -> int:
        return len(self._streams)

    def open(self, token: str) -> Subscription | None:
        """A new stream, primed with the current state of each kind; None at the cap.
        A token's oldest stream ends when it opens one more than MAX_PER_TOKEN."""
        own = [stream for stream in self._streams if stream.token_is(token)]
        if len(own) >= MAX_PER_TOKEN:
            own[0].end()  # oldest first: the dict keeps the order they opened in
        if len(self._streams) >= self._cap:
            return None
        stream = Subscription(token, self._keepalive, self._forget, self._authorized)
        for kind in KINDS:
            data = frame(kind, self._sources[kind]())
            stream.offer(kind, data)
            if self._last.get(kind) != data:  # news for the others too
                self._last[kind] = data
                for other in self._streams:
                    other.offer(kind, data)
        self._streams[stream] = None
        return stream

    def publish(self, kind: str, payload: Mapping[str, Any]) -> None:
        data = frame(kind, payload)
        if self._last.get(kind) == data:
            return
        self._last[kind] = data
        for stream in self._streams:
            stream.offer(kind, data)

    def sweep(self) -> None:
        """End the streams whose token has ended (logout, expiry, password change)."""
        for stream in list(self._streams):
            if not stream.holds(self._authorized):
                stream.end()

    def end_all(self) -> None:
        for stream in list(self._streams):
            stream.end()

    def _forget(self, stream: Subscription) -> None:
        self._streams.pop(stream, None)


@dataclass
class _Seen:
    loud: Any = None  # the view without its quiet keys
    view: Any = None
    at: float = float("-inf")


@dataclass
class Changes:
    """Pure: which looks at a source are worth publishing."""

    quiet_period: float = QUIET_PERIOD
    _seen: dict[str, _Seen] = field(default_factory=dict)

    def due(self, kind: str, view: Mapping[str, Any], now: float) -> bool:
        seen = self._seen.setdefault(kind, _Seen())
        loud = {key: value for key, value in view.items() if key not in QUIET_KEYS}
        if loud == seen.loud and (view == seen.view or now - seen.at < self.quiet_period):
            return False
        seen.loud, seen.view, seen.at = loud, view, now
        return True


class Feed:
    """The outbox's subscriber: each change of the registration, the call or the settings
    becomes a frame at once. While a call is up, its counters (`QUIET_KEYS`) are read
    again once a second for the open streams; with no call, no timer runs here."""

    def __init__(
        self,
        hub: Hub,
        device: Device,
        quiet_period: float = QUIET_PERIOD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._hub, self._device, self._clock = hub, device, clock
        self._changes = Changes(quiet_period)
        self._in_call = False
        self._refresh: asyncio.TimerHandle | None = None
        self._closed = False

    def __call__(self, event: DeviceEvent) -> None:
        match event:
            case RegistrationChanged():
                self._offer("registration", status.to_view(self._device.settings, event.status))
            case CallChanged():
                self._in_call = event.status.state != "idle"
                self._offer("call", status_view(event.status))
                self._arm()
            case SettingsSaved():
                self._hub.publish("settings", to_view(event.settings))
                self._offer("registration", self._device.status_view())  # sip_status at once
            case _:
                pass  # the call's status carries the digits and the end

    def close(self) -> None:
        """The server stops: no more refreshes, and every stream ends."""
        self._closed = True
        if self._refresh is not None:
            self._refresh.cancel()
            self._refresh = None
        self._hub.end_all()

    @property
    def refreshing(self) -> bool:
        """Whether a refresh of the call's counters is due (only while a call is up)."""
        return self._refresh is not None

    def _offer(self, kind: str, view: Mapping[str, Any]) -> None:
        if self._changes.due(kind, view, self._clock()):
            self._hub.publish(kind, view)

    def _arm(self) -> None:
        if self._in_call and self._refresh is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._refresh = loop.call_later(self._changes.quiet_period, self._refreshed)
        elif not self._in_call and self._refresh is not None:
            self._refresh.cancel()
            self._refresh = None

    def _refreshed(self) -> None:
        self._refresh = None
        if len(self._hub):  # nobody reads: no need to look
            self._offer("call", status_view(self._device.phone.status()))
        self._arm()


def device_sources(device: Device) -> dict[str, Read]:
    """The current state of each kind, read from the device."""
    return {
        "registration": device.status_view,
        "call": lambda: status_view(device.phone.status()),  # the phone may be swapped in later
        "settings": lambda: to_view(device.settings),
    }


def for_device(
    device: Device,
    authorized: Callable[[str], bool],
    cap: int = MAX_STREAMS,
    keepalive: float = KEEPALIVE,
) -> tuple[Hub, Feed]:
    """The hub of a device's events, fed by the device's outbox."""
    hub = Hub(device_sources(device), authorized, cap, keepalive)
    feed = Feed(hub, device)
    device.outbox.subscribe(feed)
    return hub, feed
