"""A few log lines a second for each kind of event; the rest counted, told later."""

import logging

import pytest

from intercom_sip.loglimit import PER_WINDOW, LogLimit, Window


def test_a_window_admits_a_few_then_counts_the_rest() -> None:
    window = Window()
    admitted = [window.admit(10.0 + i / 100) for i in range(PER_WINDOW + 3)]
    assert admitted == [0] * PER_WINDOW + [None] * 3
    assert window.admit(11.0) == 3  # the next window tells how many were left out
    assert window.admit(11.1) == 0


def test_a_flood_of_one_kind_leaves_a_few_lines(caplog: pytest.LogCaptureFixture) -> None:
    clock = [0.0]
    limit = LogLimit(logging.getLogger("test.loglimit"), clock=lambda: clock[0])
    with caplog.at_level(logging.INFO, "test.loglimit"):
        for i in range(10_000):
            clock[0] = i / 1000  # 10 s of 1000 events a second
            limit.log("flood", logging.INFO, "event %d", i)
        limit.log("other", logging.INFO, "another kind")
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 10 * PER_WINDOW + 1
    assert lines[: PER_WINDOW + 1] == [f"event {i}" for i in range(PER_WINDOW)] + [
        f"event 1000 ({1000 - PER_WINDOW} more like it not logged)"
    ]
    assert lines[-1] == "another kind"
