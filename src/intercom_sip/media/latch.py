"""Which source address a call's media is taken from and sent to (CONTRACT §6.7), pure.

As Asterisk's strictrtp and rtpengine do, so that no one who sprays well-formed RTP at
the port can take a live stream over (the "RTP Bleed" class, CVE-2017-14099):

- The SDP address is the call's first current source, and where the first packet goes.
  Packets from it are always taken and make it current again.
- Another address (a caller behind NAT) becomes current only after a run of in-sequence
  packets of one SSRC (RFC 3550 A.1's probation), and only once the current source has
  been silent for `QUIET` seconds; a source made current starts that time afresh. At the
  start of the call, before anything came from the SDP address, the first source to pass
  the probation is latched at once: the NAT case, where the SDP address never sends.
- A re-INVITE naming a new address (`move`) makes it current at once; the start-of-call
  exception is over, so packets still in flight from the old address never pull it back
  (RFC 3264 §8.3.1).

Times are seconds of one monotonic clock, passed in.
"""

from dataclasses import dataclass
from typing import Final

from ..address import Address

QUIET: Final = 1.0  # seconds the current source must be silent before another is latched
RUN: Final = 4  # in-sequence packets of one SSRC a new source must show (Asterisk's default)
MAX_CANDIDATES: Final = 16  # sources on probation at once; the oldest is forgotten first
SEQ_MOD: Final = 1 << 16


@dataclass
class _Candidate:
    ssrc: int
    sequence: int
    run: int


class Latch:
    """The current source of one call's media, and who may become it."""

    def __init__(self, sdp: Address | None, now: float) -> None:
        self.sdp = sdp
        self.current = sdp
        self._heard = now  # when the current source last sent (or became current)
        self._early = True  # nothing has come from the SDP address yet
        self._candidates: dict[Address, _Candidate] = {}
        self.latches = 0  # times another source than the SDP address was latched

    def move(self, sdp: Address | None, now: float) -> None:
        """A re-INVITE or UPDATE named a new address: it is current from now on."""
        if sdp == self.sdp:
            return
        self.sdp = self.current = sdp
        self._heard, self._early = now, False
        self._candidates.clear()

    def admit(self, source: Address, ssrc: int, sequence: int, now: float) -> bool:
        """Whether a packet (already authenticated, over SRTP) is taken; it may latch."""
        if source == self.sdp:
            self._early = False
            self._make_current(source, now)
            return True
        if source == self.current:
            self._heard = now
            return True
        if not self._on_probation(source, ssrc, sequence):
            return False
        if not self._early and now - self._heard < QUIET:
            return False
        self._make_current(source, now)
        self._early = False  # only the first source to pass is latched so
        self.latches += 1
        return True

    def shut_to(self, source: Address, now: float) -> bool:
        """Whether a packet from `source` would be dropped whatever it holds: a stranger's
        while the current source is live. Checked before any parsing or SRTP work, so that
        a spray costs next to nothing."""
        if source in (self.sdp, self.current):
            return False
        return not self._early and now - self._heard < QUIET

    def owns(self, source: Address, rtcp_port: int | None = None) -> bool:
        """Whether RTCP from `source` is the current source's: from its port (rtcp-mux),
        the one above (RFC 3550 §11), or the SDP's `a=rtcp` port (RFC 3605)."""
        current = self.current
        if current is None or source[0] != current[0]:
            return False
        return source[1] in (current[1], current[1] + 1, rtcp_port)

    def _make_current(self, source: Address, now: float) -> None:
        self.current, self._heard = source, now
        self._candidates.clear()

    def _on_probation(self, source: Address, ssrc: int, sequence: int) -> bool:
        """Count the packet into its source's run; True once the run is long enough."""
        candidate = self._candidates.pop(source, None)
        if candidate is None or candidate.ssrc != ssrc:
            candidate = _Candidate(ssrc, sequence, 1)
        elif sequence == (candidate.sequence + 1) % SEQ_MOD:
            candidate.sequence, candidate.run = sequence, candidate.run + 1
        else:
            candidate.sequence, candidate.run = sequence, 1
        if len(self._candidates) >= MAX_CANDIDATES:
            del self._candidates[next(iter(self._candidates))]
        self._candidates[source] = candidate  # at the end: the most recently heard
        return candidate.run >= RUN
