"""Test audio, pure and stdlib only: make a tone, write it as WAV or raw G.711 mu-law,
and measure what a recording holds (its dominant frequency, its loudness).

This is the peers' own oracle, written independently of `intercom_sip.media` on purpose:
a bug in the service's codec must not be cancelled by the same bug in the check.
"""

from __future__ import annotations

import array
import math
import wave
from dataclasses import dataclass
from pathlib import Path

RATE = 8000  # G.711's sample rate, and what the peers' tone files use
FULL_SCALE = 32767
_MULAW_BIAS = 0x84
_MULAW_CLIP = 32635


@dataclass(frozen=True)
class Recording:
    """Mono 16-bit samples and their rate, as read from a WAV file."""

    samples: tuple[int, ...]
    rate: int

    @property
    def seconds(self) -> float:
        """How long the recording lasts."""
        return len(self.samples) / self.rate


def tone(frequency: float, seconds: float, *, rate: int = RATE, level: float = 0.5) -> list[int]:
    """A sine of `frequency` Hz at `level` of full scale, as 16-bit samples."""
    amplitude = level * FULL_SCALE
    step = 2 * math.pi * frequency / rate
    return [round(amplitude * math.sin(step * n)) for n in range(round(seconds * rate))]


def write_wav(path: Path, samples: list[int], *, rate: int = RATE) -> Path:
    """Write mono 16-bit PCM (what baresip's aufile module reads)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(array.array("h", samples).tobytes())
    return path


def write_mulaw(path: Path, samples: list[int]) -> Path:
    """Write headerless G.711 mu-law bytes (what SIPp 3.6.1's rtp_stream sends as PCMU).

    SIPp 3.6.1 reads the whole file as payload, so there must be no WAV header.
    """
    path.write_bytes(bytes(mulaw_byte(s) for s in samples))
    return path


def mulaw_byte(sample: int) -> int:
    """One 16-bit sample as a G.711 mu-law byte (ITU-T G.711, the classic biased form)."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), _MULAW_CLIP) + _MULAW_BIAS
    exponent = magnitude.bit_length() - 8  # segment 0..7: the bias keeps bit 7 set
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | exponent << 4 | mantissa) & 0xFF


def read_wav(path: Path) -> Recording:
    """Read a mono 16-bit PCM WAV file (what baresip's sndfile module writes)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise ValueError(
                f"{path}: want mono 16-bit PCM, got {wav.getnchannels()} channel(s) "
                f"of {8 * wav.getsampwidth()} bits"
            )
        rate = wav.getframerate()
        data = array.array("h", wav.readframes(wav.getnframes()))
    return Recording(tuple(data), rate)


def rms(samples: tuple[int, ...] | list[int]) -> float:
    """Root mean square level, in 16-bit units (0 for no samples)."""
    if not samples:
        return 0.0
    return math.sqrt(sum(s * s for s in samples) / len(samples))


def goertzel_power(samples: tuple[int, ...] | list[int], frequency: float, rate: int) -> float:
    """The power of `samples` at `frequency` Hz (Goertzel), normalised by the length."""
    coefficient = 2 * math.cos(2 * math.pi * frequency / rate)
    previous = before = 0.0
    for sample in samples:
        previous, before = sample + coefficient * previous - before, previous
    power = previous * previous + before * before - coefficient * previous * before
    return power / max(len(samples), 1) ** 2


def dominant_frequency(
    recording: Recording,
    *,
    low: int = 100,
    high: int = 3500,
    step: int = 10,
    window: float = 1.0,
) -> int:
    """The frequency (Hz, to `step`) that holds the most power in the loudest `window`
    seconds of the recording, scanned from `low` to `high`.

    The loudest window, not the first: a recording starts with silence until media flows.
    """
    samples = loudest_window(recording, window)
    best = max(
        range(low, high + 1, step), key=lambda f: goertzel_power(samples, f, recording.rate)
    )
    return best


def loudest_window(recording: Recording, seconds: float) -> tuple[int, ...]:
    """The `seconds`-long slice (on a 0.25 s grid) with the highest RMS."""
    size = max(1, round(seconds * recording.rate))
    hop = max(1, recording.rate // 4)
    starts = range(0, max(1, len(recording.samples) - size + 1), hop)
    best = max(starts, key=lambda start: rms(recording.samples[start : start + size]))
    return recording.samples[best : best + size]


def has_tone(recording: Recording, frequency: float, *, tolerance: float = 20.0) -> bool:
    """Whether the recording is not silence and its dominant frequency is `frequency`."""
    if rms(loudest_window(recording, 1.0)) < 300:  # ~ -40 dBFS: silence or comfort noise
        return False
    return abs(dominant_frequency(recording) - frequency) <= tolerance
