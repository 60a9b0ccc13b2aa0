"""Receiver statistics: RFC 3550 A.1 sequence validation and A.8 jitter."""

from intercom_sip.media.stats import MAX_DROPOUT, ReceiveStats, Summary

SSRC = 0x5EED


def feed(stats: ReceiveStats, sequences: list[int], ssrc: int = SSRC) -> list[bool]:
    # Evenly spaced arrivals matching the timestamps: no jitter.
    return [stats.record(ssrc, s, 160 * i, 0.02 * i, audio=True) for i, s in enumerate(sequences)]


def test_a_clean_stream_counts_every_packet() -> None:
    stats = ReceiveStats()
    assert feed(stats, list(range(100, 150))) == [False] + [True] * 49
    assert stats.summary() == Summary(received=50, lost=0, jitter_ms=0.0)


def test_nothing_received_is_all_zero() -> None:
    assert ReceiveStats().summary() == Summary(0, 0, 0.0)


def test_losses_across_the_sequence_wrap() -> None:
    stats = ReceiveStats()
    sequences = [65530, 65531, 65532, 65535, 0, 3, 4]  # 65533, 65534, 1, 2 lost
    feed(stats, sequences)
    assert stats.summary() == Summary(received=7, lost=4, jitter_ms=0.0)


def test_probation_restarts_on_a_gap() -> None:
    stats = ReceiveStats()
    assert feed(stats, [10, 20, 21, 22]) == [False, False, True, True]
    assert stats.summary() == Summary(received=3, lost=0, jitter_ms=0.0)


def test_late_and_duplicate_packets_are_counted_as_a1_does() -> None:
    stats = ReceiveStats()
    feed(stats, [1, 2, 4, 3, 4])
    # Five received for four expected: loss is never below zero.
    assert stats.summary() == Summary(received=5, lost=0, jitter_ms=0.0)


def test_a_big_jump_is_dropped_until_the_next_packet_confirms_it() -> None:
    stats = ReceiveStats()
    far = (5 + MAX_DROPOUT + 10) % 65536
    assert feed(stats, [1, 2, 3, far, 4, far, far + 1]) == [
        False,
        True,
        True,
        False,
        True,
        False,
        True,
    ]
    # The restart at `far + 1` forgets the earlier counts of this source (A.1 init_seq).
    assert stats.summary() == Summary(received=1, lost=0, jitter_ms=0.0)


def test_a_new_ssrc_keeps_the_counts_of_the_old_one() -> None:
    stats = ReceiveStats()
    feed(stats, [1, 2, 4])
    feed(stats, [9000, 9001, 9003], ssrc=SSRC + 1)
    assert stats.summary() == Summary(received=6, lost=2, jitter_ms=0.0)


def test_jitter_follows_a8_in_timestamp_units_reported_in_ms() -> None:
    stats = ReceiveStats()
    # Every other packet arrives 10 ms late: |D| = 80 timestamp units. The first packet
    # is still on probation (A.1), so the second gives the first transit time.
    arrivals = [0.02 * i + (0.01 if i % 2 else 0.0) for i in range(5)]
    for i, arrival in enumerate(arrivals):
        stats.record(SSRC, i, 160 * i, arrival, audio=True)
    jitter = 0.0
    for _ in range(3):
        jitter += (80 - jitter) / 16
    assert stats.summary() == Summary(5, 0, round(jitter / 8, 2))
    assert stats.summary().jitter_ms == 1.76


def test_jitter_ignores_the_timestamp_wrap_and_event_packets() -> None:
    stats = ReceiveStats()
    stats.record(SSRC, 1, 2**32 - 320, 5.0, audio=True)  # on probation
    stats.record(SSRC, 2, 2**32 - 160, 5.02, audio=True)
    stats.record(SSRC, 3, 0, 5.04, audio=True)  # the timestamp wraps
    stats.record(SSRC, 4, 160, 5.1, audio=False)  # a telephone event, stamped at its start
    stats.record(SSRC, 5, 320, 5.08, audio=True)
    assert stats.summary() == Summary(5, 0, 0.0)
