"""A repeated event is said a few times a second at most, then how often it was held."""

import logging

import pytest

from intercom_sip.logthrottle import MAX_KINDS, ThrottledLog
from tests.conftest import FakeClock


@pytest.fixture
def logger(caplog: pytest.LogCaptureFixture) -> logging.Logger:
    caplog.set_level(logging.INFO, logger="test.throttle")
    return logging.getLogger("test.throttle")


def test_a_flood_is_cut_to_a_few_lines_a_second(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    throttled = ThrottledLog(logger, per_second=3, clock=clock)
    for n in range(1000):
        throttled.log(logging.WARNING, "accept", "cannot accept: %d", n)
    clock.now += 1.0
    throttled.log(logging.WARNING, "accept", "cannot accept: %d", 1000)
    assert [r.getMessage() for r in caplog.records] == [
        "cannot accept: 0",
        "cannot accept: 1",
        "cannot accept: 2",
        "cannot accept: 1000 (997 more like this held back)",
    ]


def test_each_kind_has_its_own_allowance(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    throttled = ThrottledLog(logger, per_second=1, clock=FakeClock())
    for _ in range(5):
        throttled.log(logging.INFO, "a", "first kind")
        throttled.log(logging.INFO, "b", "second kind")
    assert [r.getMessage() for r in caplog.records] == ["first kind", "second kind"]


def test_the_table_of_kinds_is_bounded(logger: logging.Logger) -> None:
    throttled = ThrottledLog(logger, clock=FakeClock())
    for n in range(MAX_KINDS * 3):
        throttled.log(logging.INFO, f"kind {n}", "line")
    assert len(throttled._windows) <= MAX_KINDS


def test_levels_not_logged_cost_nothing(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    throttled = ThrottledLog(logger, clock=FakeClock())
    throttled.log(logging.DEBUG, "quiet", "not shown")
    assert caplog.records == []
    assert throttled._windows == {}
