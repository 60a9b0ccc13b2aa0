"""The outbox: a bounded, synchronous fan-out of typed events."""

import logging

import pytest

from intercom_sip.agent import outbox
from intercom_sip.agent.outbox import DeviceEvent, DtmfSent, Outbox


def test_each_subscriber_gets_each_event_before_emit_returns_in_order() -> None:
    box, first, second = Outbox(), list[DeviceEvent](), list[DeviceEvent]()
    box.subscribe(first.append)
    box.subscribe(second.append)
    box.emit(DtmfSent("1"))
    box.emit(DtmfSent("#"))
    assert first == second == [DtmfSent("1"), DtmfSent("#")]
    box.unsubscribe(first.append)
    box.emit(DtmfSent("2"))
    assert (first, second[-1]) == ([DtmfSent("1"), DtmfSent("#")], DtmfSent("2"))


def test_a_failing_subscriber_stops_neither_the_others_nor_the_emitter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    box, got = Outbox(), list[DeviceEvent]()

    def broken(event: DeviceEvent) -> None:
        raise RuntimeError("bug")

    box.subscribe(broken)
    box.subscribe(got.append)
    with caplog.at_level(logging.ERROR, "intercom_sip.agent.outbox"):
        for _ in range(10):
            box.emit(DtmfSent("5"))
    assert got == [DtmfSent("5")] * 10
    # Logged, a few lines a window at most: a subscriber's bug cannot fill the log.
    lines = [r.getMessage() for r in caplog.records if r.name == "intercom_sip.agent.outbox"]
    assert lines == ["a subscriber failed on DtmfSent"] * 3


def test_subscribers_are_bounded() -> None:
    box = Outbox()
    for _ in range(outbox.MAX_SUBSCRIBERS):
        box.subscribe(lambda event: None)
    with pytest.raises(ValueError, match=r"^too many subscribers to one outbox$"):
        box.subscribe(lambda event: None)
