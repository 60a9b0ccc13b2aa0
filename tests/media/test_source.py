"""The sources a call sends: a tone and a WAV file, looped in 20 ms frames."""

import math
import struct
import wave
from pathlib import Path

import pytest

from intercom_sip.media.source import (
    BAD_FREQUENCY,
    EMPTY,
    FRAME_BYTES,
    MAX_WAV_SECONDS,
    NOT_WAV,
    TONE_LEVEL,
    TOO_LONG,
    WRONG_FORMAT,
    Loop,
    SourceError,
    load_wav,
    tone,
)


def samples(frames: list[bytes]) -> list[int]:
    pcm = b"".join(frames)
    return list(struct.unpack(f"<{len(pcm) // 2}h", pcm))


def take(source: Loop, count: int) -> list[bytes]:
    return [source.next_frame() for _ in range(count)]


@pytest.mark.parametrize("frequency", [425, 1000, 997, 1])
def test_the_tone_is_a_continuous_sine_across_frames(frequency: int) -> None:
    source = tone(frequency)
    assert isinstance(source, Loop)
    frames = take(source, 120)  # past the one-second period of any whole frequency
    assert {len(frame) for frame in frames} == {FRAME_BYTES}
    amplitude = TONE_LEVEL * 32767
    expected = [
        round(amplitude * math.sin(2 * math.pi * frequency * n / 8000)) for n in range(120 * 160)
    ]
    assert samples(frames) == expected


@pytest.mark.parametrize("frequency", [0, -5, 4000, 8000])
def test_a_tone_past_nyquist_or_below_one_hz_is_refused(frequency: int) -> None:
    assert tone(frequency) == SourceError(BAD_FREQUENCY)


def write_wav(path: Path, pcm: bytes, rate: int = 8000, channels: int = 1, width: int = 2) -> Path:
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(pcm)
    return path


def test_a_wav_loops_frame_after_frame(tmp_path: Path) -> None:
    pcm = struct.pack("<400h", *range(400))  # two and a half frames
    source = load_wav(write_wav(tmp_path / "a.wav", pcm))
    assert isinstance(source, Loop)
    assert samples(take(source, 5)) == list(range(400)) * 2


def test_a_wav_shorter_than_a_frame_repeats_within_it(tmp_path: Path) -> None:
    source = load_wav(write_wav(tmp_path / "a.wav", struct.pack("<3h", 1, 2, 3)))
    assert isinstance(source, Loop)
    assert samples(take(source, 2)) == [1, 2, 3] * 106 + [1, 2]


@pytest.mark.parametrize(
    ("rate", "channels", "width"), [(16000, 1, 2), (8000, 2, 2), (8000, 1, 1), (44100, 2, 2)]
)
def test_other_wav_shapes_are_refused(
    tmp_path: Path, rate: int, channels: int, width: int
) -> None:
    path = write_wav(tmp_path / "a.wav", bytes(640), rate, channels, width)
    assert load_wav(path) == SourceError(WRONG_FORMAT)


def test_a_wav_that_is_not_pcm_is_refused(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "a.wav", bytes(640))
    data = bytearray(path.read_bytes())
    data[20:22] = (3).to_bytes(2, "little")  # WAVE_FORMAT_IEEE_FLOAT
    path.write_bytes(bytes(data))
    assert load_wav(path) == SourceError(WRONG_FORMAT)


@pytest.mark.parametrize("content", [b"", b"RIFF", b"not a wav at all" * 10])
def test_what_is_not_a_wav_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(content)
    assert load_wav(path) == SourceError(NOT_WAV)


def test_a_missing_file_or_a_directory_is_refused(tmp_path: Path) -> None:
    assert load_wav(tmp_path / "missing.wav") == SourceError(NOT_WAV)
    assert load_wav(tmp_path) == SourceError(NOT_WAV)


def test_an_empty_wav_is_refused(tmp_path: Path) -> None:
    assert load_wav(write_wav(tmp_path / "a.wav", b"")) == SourceError(EMPTY)


def test_the_longest_wav_is_taken_and_one_sample_more_refused(tmp_path: Path) -> None:
    longest = bytes(2 * 8000 * MAX_WAV_SECONDS)
    assert isinstance(load_wav(write_wav(tmp_path / "a.wav", longest)), Loop)
    too_long = write_wav(tmp_path / "b.wav", longest + bytes(2))
    assert load_wav(too_long) == SourceError(TOO_LONG)


def test_the_messages_say_what_is_wrong() -> None:
    assert WRONG_FORMAT == "the audio file must be WAV, 8000 Hz, mono, 16-bit PCM"
    assert TOO_LONG == "the audio file is longer than 600 s"
