"""A registrar under load (issue 14, a building): its 503's Retry-After is honoured, and
refreshes drift apart when asked to (values, a fake clock)."""

import random

import pytest

from intercom_sip.sip.message import Headers, Response
from intercom_sip.sip.register_message import answer_of, retry_after
from intercom_sip.sip.registration import Account, RegisterReply, Registration, State, Timers

ACCOUNT = Account("2001", "secret", 600)
BUSY = RegisterReply(503, "Service Unavailable", retry_after=120)


def machine(timers: Timers | None = None, seed: int = 7) -> Registration:
    return Registration(ACCOUNT, random.Random(seed), timers or Timers())


def test_a_503_with_retry_after_waits_at_least_that_long() -> None:
    reg = machine()
    reg.register(100.0)
    assert reg.on_answer(BUSY, 100.5) is None
    assert reg.state is State.FAILED
    assert reg.next_at is not None
    # Never sooner than asked (the first backoff alone would be about 1 s), and at most
    # the backoff's jitter (20 %) later.
    assert 100.5 + 120 <= reg.next_at <= 100.5 + 120 * 1.2


def test_retries_after_a_503_spread_out() -> None:
    seen = set()
    for seed in range(50):
        reg = machine(seed=seed)
        reg.register(0.0)
        reg.on_answer(BUSY, 0.0)
        seen.add(reg.next_at)
    assert len(seen) == 50


def test_a_503_without_retry_after_backs_off_as_before() -> None:
    reg = machine()
    reg.register(100.0)
    reg.on_answer(RegisterReply(503, "Service Unavailable"), 100.0)
    assert reg.next_at is not None and 100.8 <= reg.next_at <= 101.2


def test_a_retry_after_shorter_than_the_backoff_keeps_the_backoff() -> None:
    reg = machine(Timers(backoff_first=60.0))
    reg.register(0.0)
    reg.on_answer(RegisterReply(503, "Service Unavailable", retry_after=1), 0.0)
    assert reg.next_at is not None and 48.0 <= reg.next_at <= 72.0


def granted_refresh(timers: Timers, seed: int) -> float | None:
    reg = machine(timers, seed)
    reg.register(0.0)
    reg.on_answer(RegisterReply(200, "OK", granted=600), 0.0)
    return reg.next_at


def test_refreshes_drift_apart_with_jitter() -> None:
    plain = {granted_refresh(Timers(), seed) for seed in range(20)}
    assert plain == {540.0}  # 600 s, refreshed 10 % before: the same for every monitor
    jittered = {granted_refresh(Timers(refresh_jitter=0.05), seed) for seed in range(20)}
    assert len(jittered) == 20
    assert all(r is not None and 510.0 <= r <= 540.0 for r in jittered)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120),
        ("120 (I'm in a meeting)", 120),
        ("18000;duration=3600", 18000),
        (" 30 ", 30),
        ("soon", None),
        ("-5", None),
        ("", None),
        ("123456789", None),
    ],
)
def test_retry_after_header(header: str, seconds: int | None) -> None:
    assert retry_after(header) == seconds


def test_answer_of_a_503_carries_its_retry_after() -> None:
    busy = Response(503, "Service Unavailable", Headers((("Retry-After", "30"),)))
    assert answer_of(busy, None) == RegisterReply(503, "Service Unavailable", retry_after=30)
