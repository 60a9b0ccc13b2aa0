"""The HTTP server's use of the log limit: a few lines a second, then a count."""

import logging

import pytest

from intercom_sip.loglimit import MAX_KINDS, LogLimit
from tests.conftest import FakeClock


@pytest.fixture
def logger(caplog: pytest.LogCaptureFixture) -> logging.Logger:
    caplog.set_level(logging.INFO, logger="test.throttle")
    return logging.getLogger("test.throttle")


def test_a_flood_is_cut_to_a_few_lines_a_second(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    throttled = LogLimit(logger, per_window=3, clock=clock)
    for n in range(1000):
        throttled.log("accept", logging.WARNING, "cannot accept: %d", n)
    clock.now += 1.0
    throttled.log("accept", logging.WARNING, "cannot accept: %d", 1000)
    assert [r.getMessage() for r in caplog.records] == [
        "cannot accept: 0",
        "cannot accept: 1",
        "cannot accept: 2",
        "cannot accept: 1000 (997 more like it not logged)",
    ]


def test_each_kind_has_its_own_allowance(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    throttled = LogLimit(logger, per_window=1, clock=FakeClock())
    for _ in range(5):
        throttled.log("a", logging.INFO, "first kind")
        throttled.log("b", logging.INFO, "second kind")
    assert [r.getMessage() for r in caplog.records] == ["first kind", "second kind"]


def test_the_table_of_kinds_is_bounded(logger: logging.Logger) -> None:
    throttled = LogLimit(logger, clock=FakeClock())
    for n in range(MAX_KINDS * 3):
        throttled.log(f"kind {n}", logging.INFO, "line")
    assert len(throttled._windows) <= MAX_KINDS


def test_levels_not_logged_cost_nothing(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    throttled = LogLimit(logger, clock=FakeClock())
    throttled.log("quiet", logging.DEBUG, "not shown")
    assert caplog.records == []
    assert throttled._windows == {}
