"""Send lateness: nearest-rank percentiles of the recent packets, the worst of all, bounded."""

from intercom_sip.media.lateness import Lateness, LatenessSummary


def test_no_samples() -> None:
    assert Lateness().summary() == LatenessSummary(0, 0.0, 0.0, 0.0)


def test_percentiles_by_nearest_rank() -> None:
    lateness = Lateness()
    for ms in range(1, 101):  # 1..100 ms, shuffled order does not matter
        lateness.record(((ms * 37) % 100 + 1) / 1000)
    assert lateness.summary() == LatenessSummary(100, 50.0, 99.0, 100.0)


def test_only_the_recent_samples_are_kept_but_the_worst_is_never_forgotten() -> None:
    lateness = Lateness(size=4)
    for seconds in (0.5, 0.001, 0.002, 0.003, 0.004, 0.005):
        lateness.record(seconds)
    assert lateness.recent() == (0.002, 0.003, 0.004, 0.005)
    assert lateness.summary() == LatenessSummary(6, 3.0, 5.0, 500.0)
