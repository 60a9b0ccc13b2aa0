"""DTMF as RFC 4733 telephone-events: the payloads of a digit, and the digits received.

A digit sent is a run of 20 ms packets whose duration grows, then the end packet three
times (RFC 4733 §2.5.1.4), all with the timestamp of the event's start. A digit received
is counted once, at its first end packet; a new event arriving before any end packet of
the previous one counts that previous one too, so that a digit whose three end packets
were all lost is still heard.
"""

import struct
from dataclasses import dataclass
from typing import Final

from ..sip.syntax import DTMF_DIGITS as DIGITS  # events 0..15 (RFC 4733 §3.2)

EVENT: Final = struct.Struct("!BBH")
VOLUME: Final = 10  # -10 dBm0, a usual DTMF level
TONE_SLOTS: Final = 5  # 100 ms of tone, well over the 40 ms receivers need
END_REPEATS: Final = 3
SLOT: Final = 160  # timestamp units (8 kHz) in a 20 ms packet


@dataclass(frozen=True)
class Event:
    """One telephone-event payload."""

    event: int
    end: bool
    volume: int
    duration: int


def parse_event(payload: bytes) -> Event | None:
    """The event a payload carries; None for a payload that is not one (too short)."""
    if len(payload) < EVENT.size:
        return None
    event, flags, duration = EVENT.unpack_from(payload)
    return Event(event, bool(flags & 0x80), flags & 0x3F, duration)


def build_event(event: Event) -> bytes:
    flags = (0x80 if event.end else 0) | (event.volume & 0x3F)
    return EVENT.pack(event.event, flags, event.duration)


def digit_payloads(digit: str, slot: int = SLOT) -> tuple[bytes, ...]:
    """The payloads that send one digit (of `DIGITS`), one per slot of `slot` samples."""
    code = DIGITS.index(digit.upper())
    growing = [Event(code, False, VOLUME, slot * n) for n in range(1, TONE_SLOTS)]
    ending = [Event(code, True, VOLUME, slot * TONE_SLOTS)] * END_REPEATS
    return tuple(build_event(event) for event in growing + ending)


class DigitReceiver:
    """Turns received telephone-event packets into digits, each counted once."""

    def __init__(self) -> None:
        self._current: tuple[int, int] | None = None  # (timestamp, event) not yet counted
        self._counted: int | None = None  # timestamp of the last event counted

    def receive(self, timestamp: int, payload: bytes) -> str:
        """The digits this packet completes: "", one, or two (a lost end, then an end)."""
        event = parse_event(payload)
        if event is None or timestamp == self._counted:
            return ""
        digits = ""
        if self._current is not None and self._current[0] != timestamp:
            digits += _digit(self._current[1])  # the previous event's ends were all lost
        self._current = (timestamp, event.event)
        if event.end:
            digits += _digit(event.event)
            self._current, self._counted = None, timestamp
        return digits


def _digit(event: int) -> str:
    # Events past 15 (flash, tones of RFC 4734) are not digits; they count as nothing.
    return DIGITS[event] if event < len(DIGITS) else ""
