"""Contract §2: bearer tokens, bounded, under a fake clock."""

import os

from intercom_sip.admin import credentials as auth
from tests.conftest import FakeClock


def counter() -> auth.RandomBytes:
    issued = iter(range(1, 1 << 30))
    return lambda size: next(issued).to_bytes(size, "big")


def test_one_more_than_the_cap_ends_the_oldest() -> None:
    tokens = auth.Tokens(FakeClock(), os.urandom, cap=3)
    issued = [tokens.issue() for _ in range(4)]
    assert [tokens.valid(token) for token in issued] == [False, True, True, True]
    assert repr(tokens) == "<Tokens: 3 issued>"
    assert len(tokens) == 3


def test_at_most_1000_live_tokens() -> None:
    clock = FakeClock()
    tokens = auth.Tokens(clock, counter())
    issued = []
    for _ in range(1001):
        issued.append(tokens.issue())
        clock.now += 1.0
    assert [tokens.valid(token) for token in issued[:2]] == [False, True]
    assert tokens.valid(issued[-1])
    assert len(tokens) == 1000


def test_expired_tokens_leave_at_the_next_issue() -> None:
    clock = FakeClock()
    tokens = auth.Tokens(clock, os.urandom, cap=3)
    first = [tokens.issue() for _ in range(3)]
    clock.now += 3600
    second = tokens.issue()
    clock.now += 3600
    third = tokens.issue()  # the first three expired: nothing live had to end
    assert len(tokens) == 2
    assert [tokens.valid(token) for token in (*first, second, third)] == [
        False,
        False,
        False,
        True,
        True,
    ]


def test_a_revoked_token_frees_its_place() -> None:
    tokens = auth.Tokens(FakeClock(), os.urandom, cap=2)
    first, second = tokens.issue(), tokens.issue()
    tokens.revoke(second)
    third = tokens.issue()
    assert [tokens.valid(token) for token in (first, second, third)] == [True, False, True]


def test_repr_holds_no_token() -> None:
    tokens = auth.Tokens(FakeClock(), counter())
    token = tokens.issue()
    assert repr(tokens) == "<Tokens: 1 issued>"
    assert token == (1).to_bytes(20, "big").hex()
