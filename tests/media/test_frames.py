"""The slots a call sends: cut from the source's 20 ms frames, encoded, remembered."""

import struct

import pytest

from intercom_sip.media.frames import MAX_REMEMBERED, Frames
from intercom_sip.media.g711 import PCMA, PCMU
from intercom_sip.media.source import FRAME_BYTES, FRAME_SAMPLES, Loop, tone


def the_tone(frequency: int = 425) -> Loop:
    source = tone(frequency)
    assert isinstance(source, Loop)
    return source


class Counting:
    """A source whose every frame differs from the ones before (a long file's)."""

    def __init__(self) -> None:
        self.frames = 0

    def next_frame(self) -> bytes:
        self.frames += 1
        return struct.pack(f"<{FRAME_SAMPLES}h", *([self.frames] * FRAME_SAMPLES))


@pytest.mark.parametrize("samples", [160, 240, 320])
def test_slots_are_the_source_cut_to_the_ptime_and_encoded(samples: int) -> None:
    frames, reference = Frames(the_tone(), PCMU, samples), the_tone()
    pcm = b"".join(reference.next_frame() for _ in range(3 * 50))  # 3 s of the tone
    sent = b"".join(frames.next() for _ in range(len(pcm) // (2 * samples)))
    assert sent == PCMU.encode(pcm)


@pytest.mark.parametrize(("samples", "distinct"), [(160, 2), (240, 4), (320, 1)])
def test_a_tones_few_slots_are_encoded_once(samples: int, distinct: int) -> None:
    """425 Hz repeats every 320 samples: two slots at ptime 20, four at 30, one at 40."""
    frames = Frames(the_tone(), PCMU, samples)
    for _ in range(500):
        frames.next()
    assert frames.remembered == distinct


def test_a_source_that_never_repeats_fills_the_memory_once_then_is_encoded() -> None:
    source, reference = Counting(), Counting()
    frames = Frames(source, PCMA, FRAME_SAMPLES)
    for _ in range(3 * MAX_REMEMBERED):
        assert frames.next() == PCMA.encode(reference.next_frame())
    assert frames.remembered == MAX_REMEMBERED


def test_a_skipped_slot_is_taken_from_the_source_unsent() -> None:
    frames, reference = Frames(Counting(), PCMU, FRAME_SAMPLES), Counting()
    frames.skip()
    reference.next_frame()
    assert frames.next() == PCMU.encode(reference.next_frame())


def test_a_new_codec_or_ptime_forgets_the_slots_and_keeps_the_rest_of_a_frame() -> None:
    frames, reference = Frames(the_tone(), PCMU, 240), the_tone()
    pcm = b"".join(reference.next_frame() for _ in range(6))
    first = frames.next()  # 240 of the first frame's 160 + the second's: 80 left over
    assert frames.remembered == 1
    frames.tune(PCMA, FRAME_SAMPLES)
    assert frames.remembered == 0
    assert first == PCMU.encode(pcm[:480])
    assert frames.next() == PCMA.encode(pcm[480 : 480 + FRAME_BYTES])
    frames.tune(PCMA, FRAME_SAMPLES)  # the same again: nothing forgotten
    assert frames.remembered == 1
