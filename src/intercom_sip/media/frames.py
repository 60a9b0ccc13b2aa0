"""The audio a call sends, slot by slot: the source's 20 ms frames cut to the slot's
length (ptime 20, 30 or 40) and encoded, each distinct slot encoded once.

A looped source (a tone, a short file) repeats the same few slots for the whole call (a
425 Hz tone: two at ptime 20), and looking one up costs a small part of companding its
samples in Python again, fifty times a second. A longer source fills the memory
(`MAX_REMEMBERED` slots) once, then is encoded as it plays.
"""

from typing import Final

from .g711 import Codec
from .source import AudioSource

# Slots remembered: any whole-Hz tone repeats within 100 (at most a second of audio, at
# any ptime), and a file of up to 2.5 s at ptime 20. At most 128 * (640 + 320) bytes.
MAX_REMEMBERED: Final = 128


class Frames:
    """One call's outgoing audio: encoded slots of `samples` samples from `source`."""

    def __init__(self, source: AudioSource, codec: Codec, samples: int) -> None:
        self._source = source
        self._pcm = b""  # less than a slot, left over from the source's last frame
        self._known: dict[bytes, bytes] = {}
        self.codec, self._size = codec, 2 * samples

    def tune(self, codec: Codec, samples: int) -> None:
        """A re-INVITE's codec or ptime; what is left of the source's frame stays."""
        if (codec, 2 * samples) != (self.codec, self._size):
            self.codec, self._size = codec, 2 * samples
            self._known.clear()

    @property
    def remembered(self) -> int:
        return len(self._known)

    def next(self) -> bytes:
        """The next slot's payload, encoded."""
        if self._pcm:
            pcm = self._cut()
        else:  # ptime 20, nothing left over: the source's frame is the slot as it comes
            pcm = self._source.next_frame()
            if len(pcm) != self._size:
                self._pcm = pcm
                pcm = self._cut()
        payload = self._known.get(pcm)
        if payload is None:
            payload = self.codec.encode(pcm)
            if len(self._known) < MAX_REMEMBERED:
                self._known[pcm] = payload
        return payload

    def skip(self) -> None:
        """Let a slot's audio pass unsent (the sender woke too late for it)."""
        self._cut()

    def _cut(self) -> bytes:
        """One slot of 16-bit samples (bounded: less than a frame stays over)."""
        size = self._size
        while len(self._pcm) < size:
            self._pcm += self._source.next_frame()
        pcm, self._pcm = self._pcm[:size], self._pcm[size:]
        return pcm
