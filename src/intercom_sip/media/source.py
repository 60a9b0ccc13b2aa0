"""The audio a call sends: a tone, or a WAV file, looped; 20 ms frames of 16-bit PCM.

Both are precomputed at start, so taking a frame costs a slice. A WAV file is checked
when it is loaded (the service option is read once) and refused with a fixed message.
"""

import math
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

RATE: Final = 8000
FRAME_SAMPLES: Final = 160
FRAME_BYTES: Final = 2 * FRAME_SAMPLES
TONE_LEVEL: Final = 0.25  # of full scale: about -12 dBFS (-15 dBm0 in G.711), clear not loud
MAX_WAV_SECONDS: Final = 600  # held in memory: 9.6 MB at most

NOT_WAV: Final = "the audio file is not a readable WAV file"
WRONG_FORMAT: Final = "the audio file must be WAV, 8000 Hz, mono, 16-bit PCM"
EMPTY: Final = "the audio file has no samples"
TOO_LONG: Final = f"the audio file is longer than {MAX_WAV_SECONDS} s"
BAD_FREQUENCY: Final = "the tone frequency must be a whole number of Hz from 1 to 3999"


class AudioSource(Protocol):
    def next_frame(self) -> bytes:
        """The next 20 ms: 160 samples, 16-bit little-endian."""
        ...


@dataclass(frozen=True)
class SourceError:
    """Why an audio source cannot be used; `message` is fixed text, fit for a log."""

    message: str


class Loop:
    """Frames cut from a loop of PCM, continuous across the loop's end."""

    def __init__(self, pcm: bytes) -> None:
        # Enough copies that every frame is one slice, however short the loop.
        copies = 1 + -(-FRAME_BYTES // len(pcm))
        self._pcm, self._period, self._offset = pcm * copies, len(pcm), 0

    def next_frame(self) -> bytes:
        frame = self._pcm[self._offset : self._offset + FRAME_BYTES]
        self._offset = (self._offset + FRAME_BYTES) % self._period
        return frame


def tone(frequency: int = 425) -> Loop | SourceError:
    """A sine (425 Hz: the European ringback and dial tone pitch), phase continuous.

    An integer frequency repeats exactly after RATE / gcd(frequency, RATE) samples, at
    most one second: that period is computed once and looped.
    """
    if not 1 <= frequency < RATE // 2:
        return SourceError(BAD_FREQUENCY)
    period = RATE // math.gcd(frequency, RATE)
    amplitude = TONE_LEVEL * 32767
    samples = (
        round(amplitude * math.sin(2 * math.pi * frequency * n / RATE)) for n in range(period)
    )
    return Loop(b"".join(s.to_bytes(2, "little", signed=True) for s in samples))


def load_wav(path: Path) -> Loop | SourceError:
    """A WAV file as a looped source: 8 kHz, mono, 16-bit PCM, 1 sample to 600 s."""
    try:
        with wave.open(str(path), "rb") as reader:
            shape = (reader.getframerate(), reader.getnchannels(), reader.getsampwidth())
            if shape != (RATE, 1, 2) or reader.getcomptype() != "NONE":
                return SourceError(WRONG_FORMAT)
            if reader.getnframes() > MAX_WAV_SECONDS * RATE:
                return SourceError(TOO_LONG)
            pcm = reader.readframes(reader.getnframes())
    except wave.Error as error:
        # The module says "unknown format" for a WAV that is not PCM (float, A-law...).
        return SourceError(WRONG_FORMAT if "unknown format" in str(error) else NOT_WAV)
    except (OSError, EOFError):
        return SourceError(NOT_WAV)
    if len(pcm) < 2:
        return SourceError(EMPTY)
    return Loop(pcm[: len(pcm) // 2 * 2])
