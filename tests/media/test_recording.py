"""The recorder: received audio to a WAV (8 kHz, mono, 16-bit), bounded."""

import io
import wave

from intercom_sip.media.recording import MAX_BYTES, Recorder


def read_back(file: io.BytesIO) -> tuple[tuple[int, int, int], bytes]:
    file.seek(0)
    with wave.open(file, "rb") as reader:
        shape = (reader.getframerate(), reader.getnchannels(), reader.getsampwidth())
        return shape, reader.readframes(reader.getnframes())


def test_frames_are_written_in_order_as_a_valid_wav() -> None:
    file = io.BytesIO()
    recorder = Recorder(file)
    recorder.write(b"\x01\x00" * 160)
    recorder.write(b"\x02\x00" * 160)
    # Valid before close: the header is patched at each write.
    assert read_back(io.BytesIO(file.getvalue())) == (
        (8000, 1, 2),
        b"\x01\x00" * 160 + b"\x02\x00" * 160,
    )
    recorder.close()
    assert read_back(file) == ((8000, 1, 2), b"\x01\x00" * 160 + b"\x02\x00" * 160)
    assert recorder.dropped == 0


def test_what_passes_the_bound_is_dropped_and_counted() -> None:
    file = io.BytesIO()
    recorder = Recorder(file, max_bytes=500)
    for _ in range(3):
        recorder.write(b"\x07\x00" * 160)
    recorder.close()
    assert read_back(file) == ((8000, 1, 2), b"\x07\x00" * 250)
    assert recorder.dropped == 3 * 320 - 500


def test_an_empty_recording_is_a_valid_wav() -> None:
    file = io.BytesIO()
    Recorder(file).close()
    assert read_back(file) == ((8000, 1, 2), b"")


def test_the_default_bound_is_the_longest_call() -> None:
    assert MAX_BYTES == 1800 * 8000 * 2
