"""How late packets leave against their 20 ms schedule: the recent ones, and the worst.

The benchmark reads p50, p99 and the maximum; the last minute of a call (3000 packets)
is kept for the percentiles, the count and the worst case cover the whole call.
"""

import math
from collections import deque
from dataclasses import dataclass
from typing import Final

RECENT: Final = 3000  # 60 s of packets at 50 a second


@dataclass(frozen=True)
class LatenessSummary:
    """Milliseconds late: p50 and p99 of the recent packets, the worst of all."""

    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float


class Lateness:
    """Send time minus scheduled time, in seconds, one sample a packet sent."""

    def __init__(self, size: int = RECENT) -> None:
        self._recent: deque[float] = deque(maxlen=size)
        self.count = 0
        self.worst = 0.0

    def record(self, seconds: float) -> None:
        self._recent.append(seconds)
        self.count += 1
        self.worst = max(self.worst, seconds)

    def recent(self) -> tuple[float, ...]:
        return tuple(self._recent)

    def summary(self) -> LatenessSummary:
        ordered = sorted(self._recent)
        return LatenessSummary(
            self.count,
            _ms(_rank(ordered, 0.50)),
            _ms(_rank(ordered, 0.99)),
            _ms(self.worst),
        )


def _rank(ordered: list[float], fraction: float) -> float:
    """The nearest-rank percentile; 0 for no samples."""
    if not ordered:
        return 0.0
    return ordered[max(0, math.ceil(len(ordered) * fraction) - 1)]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
