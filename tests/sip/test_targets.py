"""Which target a binding uses (RFC 3263 §4.3): in order, kept until the TTL."""

from intercom_sip.sip.resolve import Located, Target
from intercom_sip.sip.targets import Targets

A, B, C = (
    Target("192.0.2.1", 5060, "udp"),
    Target("192.0.2.2", 5070, "udp"),
    Target("192.0.2.3", 5060, "udp"),
)


def test_nothing_until_located() -> None:
    assert Targets().current(0.0) is None


def test_the_first_target_is_kept_until_the_ttl_runs_out() -> None:
    targets = Targets()
    assert targets.located(Located((A, B), 30.0), 100.0) == A
    assert [targets.current(129.9), targets.current(130.0)] == [A, None]


def test_a_failure_moves_to_the_next_and_that_one_is_kept() -> None:
    targets = Targets()
    targets.located(Located((A, B, C), 30.0), 100.0)
    assert [targets.failed(101.0), targets.current(110.0), targets.remaining] == [B, B, 1]


def test_once_every_target_failed_the_name_is_looked_up_again() -> None:
    targets = Targets()
    targets.located(Located((A, B), 3600.0), 100.0)
    assert [targets.failed(101.0), targets.failed(102.0), targets.current(102.0)] == [
        B,
        None,
        None,
    ]


def test_a_failure_after_the_ttl_looks_the_name_up_again() -> None:
    targets = Targets()
    targets.located(Located((A, B), 1.0), 100.0)
    assert [targets.failed(101.5), targets.current(101.5)] == [None, None]


def test_an_address_literal_holds_forever() -> None:
    targets = Targets()
    targets.located(Located((A,), float("inf")), 100.0)
    assert targets.current(1e12) == A
