"""What a receiver knows of an RTP stream: RFC 3550 A.1 sequence checks, A.8 jitter.

Counts are kept per source and summed over the sources a call has heard: a peer that
restarts its stream (a new SSRC, say after a re-INVITE or a transfer in a PBX) starts a
new validation without losing what was counted before.
"""

from dataclasses import dataclass
from typing import Final

from .rtcp import SourceFigures

SEQ_MOD: Final = 1 << 16
MAX_DROPOUT: Final = 3000  # RFC 3550 A.1's values
MAX_MISORDER: Final = 100
MIN_SEQUENTIAL: Final = 2
CLOCK_RATE: Final = 8000  # G.711 and telephone-event timestamps


@dataclass(frozen=True)
class Summary:
    """The §6.1 `rtp` figures a call reports for what it receives."""

    received: int
    lost: int
    jitter_ms: float


class _Source:
    """RFC 3550 A.1 for one SSRC: probation, wrap, the extended highest sequence."""

    def __init__(self, ssrc: int, sequence: int) -> None:
        self.ssrc = ssrc
        self._restart(sequence)
        self.max_seq = (sequence - 1) % SEQ_MOD
        self.probation = MIN_SEQUENTIAL

    def _restart(self, sequence: int) -> None:
        self.base_seq = self.max_seq = sequence
        self.bad_seq = SEQ_MOD + 1  # no sequence equals it
        self.cycles = 0
        self.received = 0

    def accept(self, sequence: int) -> bool:
        """Count the packet if it belongs to the stream; False for one to drop."""
        if self.probation:
            return self._on_probation(sequence)
        delta = (sequence - self.max_seq) % SEQ_MOD
        if delta < MAX_DROPOUT:
            if sequence < self.max_seq:
                self.cycles += SEQ_MOD
            self.max_seq = sequence
        elif delta <= SEQ_MOD - MAX_MISORDER:
            # A big jump: the source restarted if the next packet follows this one.
            if sequence != self.bad_seq:
                self.bad_seq = (sequence + 1) % SEQ_MOD
                return False
            self._restart(sequence)
        self.received += 1  # in order, late or duplicated: counted, as A.1 does
        return True

    def _on_probation(self, sequence: int) -> bool:
        if sequence != (self.max_seq + 1) % SEQ_MOD:
            self.probation = MIN_SEQUENTIAL - 1
            self.max_seq = sequence
            return False
        self.probation -= 1
        self.max_seq = sequence
        if self.probation:
            return False
        # A.1 counts from the packet that ends probation; the ones before it were in
        # sequence too, so they are counted as well and a clean call shows no loss.
        self._restart(sequence)
        self.base_seq = (sequence - (MIN_SEQUENTIAL - 1)) % SEQ_MOD
        self.received = MIN_SEQUENTIAL
        return True

    @property
    def lost(self) -> int:
        expected = self.cycles + self.max_seq - self.base_seq + 1
        return max(0, expected - self.received) if self.received else 0


class ReceiveStats:
    """Received and lost packets, and interarrival jitter, of the RTP a call receives."""

    def __init__(self) -> None:
        self._source: _Source | None = None
        self._earlier_received = 0
        self._earlier_lost = 0
        self._transit: float | None = None
        self._jitter = 0.0  # in timestamp units, as A.8 keeps it

    def record(
        self, ssrc: int, sequence: int, timestamp: int, arrival: float, audio: bool
    ) -> bool:
        """One packet arrived at `arrival` seconds (any monotonic clock); False: drop it.

        Jitter is taken on audio packets only: a telephone event's packets all carry the
        event's start time, and would read as jitter.
        """
        source = self._source_for(ssrc, sequence)
        if not source.accept(sequence):
            return False
        if audio:
            self._update_jitter(timestamp, arrival)
        return True

    def summary(self) -> Summary:
        source = self._source
        received = self._earlier_received + (source.received if source else 0)
        lost = self._earlier_lost + (source.lost if source else 0)
        return Summary(received, lost, round(self._jitter * 1000 / CLOCK_RATE, 2))

    def figures(self) -> SourceFigures | None:
        """The current source's figures for an RTCP report block; None before one."""
        source = self._source
        if source is None or not source.received:
            return None
        highest = source.cycles + source.max_seq
        expected = highest - source.base_seq + 1
        return SourceFigures(source.ssrc, highest, expected, source.received, int(self._jitter))

    def _source_for(self, ssrc: int, sequence: int) -> _Source:
        if self._source is None or self._source.ssrc != ssrc:
            if self._source is not None:
                self._earlier_received += self._source.received
                self._earlier_lost += self._source.lost
            self._source, self._transit = _Source(ssrc, sequence), None
        return self._source

    def _update_jitter(self, timestamp: int, arrival: float) -> None:
        # A.8: transit times in timestamp units; the difference of two transits is what
        # the network added. The timestamp's wrap at 2**32 cancels in that difference.
        transit = arrival * CLOCK_RATE - timestamp
        if self._transit is not None:
            delta = abs(transit - self._transit)
            if delta > 1 << 31:
                delta = abs(delta - (1 << 32))
            self._jitter += (delta - self._jitter) / 16
        self._transit = transit
