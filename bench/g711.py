"""G.711 and the per-packet media path: µs per 20 ms frame, pure Python.

Run: .venv/bin/python bench/g711.py
A call needs 50 frames a second each way; the figure to compare is 20,000 µs.
"""

import random
import timeit
from collections.abc import Callable

from intercom_sip.media.dtmf import DigitReceiver, digit_payloads
from intercom_sip.media.g711 import PCMA, PCMU
from intercom_sip.media.rtp import Sender, parse
from intercom_sip.media.source import Loop, tone
from intercom_sip.media.stats import ReceiveStats

ROUNDS = 20000


def per_frame_us(statement: Callable[[], object]) -> float:
    seconds = min(timeit.repeat(statement, number=ROUNDS, repeat=5))
    return seconds / ROUNDS * 1e6


def main() -> None:
    source = tone(425)
    assert isinstance(source, Loop)
    frame = source.next_frame()
    sender, stats, digits = Sender(random.Random(1)), ReceiveStats(), DigitReceiver()
    packet = sender.audio(0, PCMU.encode(frame))
    for codec in (PCMU, PCMA):
        payload = codec.encode(frame)
        encode = per_frame_us(lambda c=codec: c.encode(frame))
        decode = per_frame_us(lambda c=codec, p=payload: c.decode(p))
        print(f"{codec.name} encode   {encode:6.1f} µs/frame")
        print(f"{codec.name} decode   {decode:6.1f} µs/frame")
    print(f"tone frame    {per_frame_us(source.next_frame):6.1f} µs/frame")
    print(f"RTP build     {per_frame_us(lambda: sender.audio(0, packet[12:])):6.1f} µs/packet")
    print(f"RTP parse     {per_frame_us(lambda: parse(packet)):6.1f} µs/packet")
    sequence = iter(range(10**9))
    record = per_frame_us(lambda: stats.record(1, next(sequence) & 0xFFFF, 0, 0.0, audio=True))
    print(f"stats record  {record:6.1f} µs/packet")
    event = digit_payloads("5")[0]
    print(f"digit receive {per_frame_us(lambda: digits.receive(0, event)):6.1f} µs/packet")


if __name__ == "__main__":
    main()
