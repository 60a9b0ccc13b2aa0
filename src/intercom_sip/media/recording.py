"""The audio a call receives, written to a WAV file (8 kHz, mono, 16-bit), bounded.

The file object comes in (the shell opens `<recordings>/<call id>.wav`), so that this
stays testable in memory. Frames past the maximum length are dropped, not written: the
longest call (1800 s) is 28.8 MB.
"""

import wave
from typing import IO, Final

RATE: Final = 8000
MAX_SECONDS: Final = 1800
MAX_BYTES: Final = MAX_SECONDS * RATE * 2


class Recorder:
    """Appends 16-bit little-endian PCM to a WAV; the header is right after each write."""

    def __init__(self, file: IO[bytes], max_bytes: int = MAX_BYTES) -> None:
        self._writer = wave.open(file, "wb")  # noqa: SIM115 - closed by `close`
        self._writer.setnchannels(1)
        self._writer.setsampwidth(2)
        self._writer.setframerate(RATE)
        self._room = max_bytes
        self.dropped = 0  # bytes past the bound

    def write(self, pcm: bytes) -> None:
        """Record a frame; what passes the maximum length is counted and dropped."""
        kept = pcm[: min(len(pcm), self._room) // 2 * 2]
        self.dropped += len(pcm) - len(kept)
        if kept:
            # `writeframes` patches the header's lengths each time (a seekable file):
            # a recording is a valid WAV even if the process is killed mid-call.
            self._writer.writeframes(kept)
            self._room -= len(kept)

    def close(self) -> None:
        self._writer.close()
