"""Live events (contract §8): a hub that fans each change out to the open event streams.

What waits for a stream is bounded by construction: the latest frame of each kind, no
more. A slow reader skips states it had no time to read and always gets the last one, so
it loses no state and its backlog never grows; coalescing is also what a status panel
wants. The settings are published by the device after each durable change; the
registration and the call by `Watcher`, which looks at them every 50 ms (no hook in the
SIP agent or the phone: one small task, and nothing in their code paths).
"""

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from intercom_sip.contract.settings import to_view
from intercom_sip.device import Device
from intercom_sip.loglimit import LogLimit

log = logging.getLogger(__name__)

KINDS: Final = ("registration", "call", "settings")
MAX_STREAMS: Final = 32
MAX_PER_TOKEN: Final = 4  # a 5th stream of one token ends its oldest: one login cannot take all
KEEPALIVE: Final = 10.0  # seconds between comments on a quiet stream (§8: at most 15)
POLL: Final = 0.05  # seconds between looks at the registration and the call
# Keys of the call that change on their own, all the time (packet counters, the age of
# the call): a change of those alone is published once a second, not every poll.
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

    def __init__(self, token: str, keepalive: float, closed: Callable[["Subscription"], None]):
        self._token = token  # a secret: never in repr
        self._keepalive, self._closed = keepalive, closed
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
        None once the stream has ended."""
        if not (self._pending or self.ended):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._keepalive)
        self._wake.clear()
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
        stream = Subscription(token, self._keepalive, self._forget)
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


class Watcher:
    """The shell: every `period`, publish what changed in the polled sources, and end
    the streams whose token ended. Idle (no look at all) while no stream is open."""

    def __init__(
        self,
        hub: Hub,
        polled: Mapping[str, Read],
        period: float = POLL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._hub, self._polled, self._period, self._clock = hub, polled, period, clock
        self._changes = Changes()
        self._task: asyncio.Task[None] | None = None
        self._errors = LogLimit(log, per_window=3)

    def tick(self) -> None:
        if not len(self._hub):
            return
        now = self._clock()
        for kind, read in self._polled.items():
            view = read()
            if self._changes.due(kind, view, now):
                self._hub.publish(kind, view)
        self._hub.sweep()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="events")

    async def stop(self) -> None:
        self._hub.end_all()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:  # a bug in a source: the streams go on, the log says it
                self._errors.log("tick", logging.ERROR, "events: a source failed", exc_info=True)
            await asyncio.sleep(self._period)


def device_sources(device: Device) -> dict[str, Read]:
    """The current state of each kind, read from the device."""
    return {
        "registration": device.status_view,
        "call": lambda: device.phone.status().to_view(),  # the phone may be swapped in later
        "settings": lambda: to_view(device.settings),
    }


def for_device(
    device: Device,
    authorized: Callable[[str], bool],
    cap: int = MAX_STREAMS,
    keepalive: float = KEEPALIVE,
) -> tuple[Hub, Watcher]:
    """The hub of a device's events and the watcher that feeds it; the device publishes
    its settings itself."""
    sources = device_sources(device)
    hub = Hub(sources, authorized, cap, keepalive)
    device.on_settings = lambda settings: hub.publish("settings", to_view(settings))
    polled = {kind: sources[kind] for kind in ("registration", "call")}
    return hub, Watcher(hub, polled)
