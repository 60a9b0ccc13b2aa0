"""RFC 3261 §17.1.2 timers E and F, by a fake clock."""

import itertools

from intercom_sip.sip.transaction import ClientTransaction, Tick


def run(reliable: bool, t1: float = 0.5) -> list[float]:
    """Every time the transaction retransmits, until it gives up."""
    tx = ClientTransaction("z9hG4bKx", b"REGISTER", reliable, 0.0, t1)
    sent = []
    while True:
        now = tx.deadline()
        tick = tx.tick(now)
        if tick is Tick.TIMEOUT:
            assert now == 64 * t1
            return sent
        assert tick is Tick.RETRANSMIT
        sent.append(now)


def test_udp_retransmits_doubling_to_t2_until_timer_f() -> None:
    assert run(reliable=False) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]


def test_reliable_transports_only_time_out() -> None:
    assert run(reliable=True) == []


def test_a_shorter_t1_scales_every_timer() -> None:
    sent = run(reliable=False, t1=0.1)
    assert sent[:4] == [0.1, 0.30000000000000004, 0.7000000000000001, 1.5]
    assert max(b - a for a, b in itertools.pairwise(sent)) <= 0.8 + 1e-9


def test_nothing_before_the_deadline() -> None:
    tx = ClientTransaction("z9hG4bKx", b"REGISTER", False, 10.0)
    assert tx.tick(10.4) is Tick.NOTHING
    assert tx.deadline() == 10.5
