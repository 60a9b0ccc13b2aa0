"""Contract §2, the 429 rule: the pure throttle, under a clock given as values."""

import pytest

from intercom_sip.admin.throttle import Admission, LoginThrottle, pair_digest

KEY = b"k" * 32
A, B = "192.0.2.1", "192.0.2.2"
HASH, SHARE, KNOWN, BLOCKED, BUSY = (
    Admission.HASH,
    Admission.SHARE,
    Admission.KNOWN_WRONG,
    Admission.BLOCKED,
    Admission.BUSY,
)


def pair(md5: str, address: str = A, username: str = "admin") -> bytes:
    return pair_digest(KEY, address, username, md5)


RIGHT = pair("right")


def throttle(**options: int) -> LoginThrottle:
    return LoginThrottle(**{"max_hashing": 16, **options})


def fail(limiter: LoginThrottle, md5: str, now: float, address: str = A) -> None:
    wrong = pair(md5, address)
    assert limiter.admit(address, wrong, now) is HASH
    limiter.settle(address, wrong, wrong=True, now=now)


def test_five_distinct_wrong_pairs_block_every_login_until_one_leaves() -> None:
    limiter = throttle()
    for n in range(5):
        fail(limiter, f"guess{n}", now=1000.0 + n)
    assert limiter.admit(A, RIGHT, 1001.0) is BLOCKED  # a right pair included
    assert limiter.admit(A, pair("guess0"), 1001.0) is BLOCKED  # a known one too
    assert limiter.admit(A, RIGHT, 1059.9) is BLOCKED  # the first is still in the window
    assert limiter.admit(A, RIGHT, 1060.1) is HASH  # fewer than 5 remain
    assert limiter.admit(B, pair("x", B), 1001.0) is HASH  # another address is free


def test_blocked_logins_are_no_failures() -> None:
    limiter = throttle()
    for n in range(5):
        fail(limiter, f"guess{n}", now=1000.0)
    for n in range(100):
        assert limiter.admit(A, pair(f"more{n}"), 1030.0) is BLOCKED
    assert limiter.wrong_pairs(A, 1030.0) == 5
    assert limiter.admit(A, RIGHT, 1060.1) is HASH


def test_the_same_wrong_pair_counts_once_and_is_not_hashed_again() -> None:
    limiter = throttle()
    fail(limiter, "old password", now=1000.0)
    for n in range(1, 200):  # a client left with an old password, retrying
        assert limiter.admit(A, pair("old password"), 1000.0 + n * 5) is KNOWN
    assert limiter.wrong_pairs(A, 2000.0) == 1
    for n in range(3):
        fail(limiter, f"guess{n}", now=2000.0)
    assert limiter.admit(A, RIGHT, 2000.0) is HASH  # 4 distinct wrong pairs: not blocked


def test_a_known_wrong_pair_stays_in_the_window_while_it_is_sent() -> None:
    limiter = throttle()
    fail(limiter, "old", now=1000.0)
    assert limiter.admit(A, pair("old"), 1050.0) is KNOWN
    assert limiter.admit(A, pair("old"), 1109.0) is KNOWN  # seen 59 s ago
    assert limiter.admit(A, pair("old"), 1169.1) is HASH  # gone for 60 s: judged again


def test_the_same_md5_from_another_address_or_user_is_another_pair() -> None:
    limiter = throttle()
    fail(limiter, "old", now=1000.0)
    assert limiter.admit(B, pair("old", B), 1000.0) is HASH
    assert limiter.admit(A, pair("old", username="root"), 1000.0) is HASH


def test_a_success_neither_counts_nor_resets() -> None:
    limiter = throttle()
    for n in range(4):
        fail(limiter, f"guess{n}", now=1000.0)
    assert limiter.admit(A, RIGHT, 1000.0) is HASH
    limiter.settle(A, RIGHT, wrong=False, now=1000.0)
    assert limiter.wrong_pairs(A, 1000.0) == 4
    fail(limiter, "guess4", now=1000.0)
    assert limiter.admit(A, RIGHT, 1000.0) is BLOCKED


def test_hashes_in_flight_hold_the_slots_of_their_address() -> None:
    limiter = throttle(per_address=5)
    for n in range(3):
        fail(limiter, f"guess{n}", now=1000.0)
    assert limiter.admit(A, pair("x"), 1000.0) is HASH
    assert limiter.admit(A, pair("y"), 1000.0) is HASH
    assert limiter.admit(A, RIGHT, 1000.0) is BLOCKED  # 3 wrong + 2 in flight
    assert limiter.admit(A, pair("guess0"), 1000.0) is KNOWN  # 3 wrong: the contract's 400
    limiter.settle(A, pair("x"), wrong=False, now=1000.0)
    assert limiter.admit(A, RIGHT, 1000.0) is HASH


def test_one_address_hashes_at_most_per_address_pairs_at_once() -> None:
    limiter = throttle(per_address=2)
    assert [limiter.admit(A, pair(f"g{n}"), 1000.0) for n in range(4)] == [HASH, HASH, BUSY, BUSY]
    assert limiter.hashing == 2
    assert limiter.admit(B, pair("g", B), 1000.0) is HASH


def test_the_same_pair_in_flight_shares_its_hash() -> None:
    limiter = throttle(per_address=1)
    assert limiter.admit(A, RIGHT, 1000.0) is HASH
    assert limiter.admit(A, RIGHT, 1000.0) is SHARE
    assert limiter.hashing == 1
    limiter.settle(A, RIGHT, wrong=False, now=1000.0)
    assert limiter.hashing == 0


def test_a_flood_gets_at_most_limit_hashes_per_window() -> None:
    limiter = throttle(per_address=5)
    admitted = [n for n in range(300) if limiter.admit(A, pair(f"g{n}"), 1000.0) is HASH]
    assert admitted == [0, 1, 2, 3, 4]
    for n in admitted:
        limiter.settle(A, pair(f"g{n}"), wrong=True, now=1000.0)
    assert all(limiter.admit(A, pair(f"h{n}"), 1059.9) is BLOCKED for n in range(300))


def test_the_global_bound_answers_busy_and_one_address_cannot_take_it() -> None:
    limiter = throttle(max_hashing=4, per_address=2)
    addresses = [f"192.0.2.{n}" for n in range(1, 4)]
    answers = [limiter.admit(ip, pair(f"g{n}", ip), 1000.0) for ip in addresses for n in range(3)]
    assert answers == [HASH, HASH, BUSY, HASH, HASH, BUSY, BUSY, BUSY, BUSY]
    assert limiter.hashing == 4
    limiter.settle(A, pair("g0"), wrong=True, now=1000.0)
    assert limiter.admit("192.0.2.3", pair("g0", "192.0.2.3"), 1000.0) is HASH


def test_the_addresses_remembered_are_bounded_and_the_oldest_forgotten() -> None:
    limiter = throttle(max_hashing=2, max_addresses=8)
    for n in range(100):
        fail(limiter, "guess", now=1000.0, address=f"10.0.0.{n}")
        assert limiter.addresses <= 8
    assert limiter.wrong_pairs("10.0.0.91", 1000.0) == 0
    assert limiter.wrong_pairs("10.0.0.92", 1000.0) == 1


def test_eviction_spares_an_address_with_a_hash_in_flight() -> None:
    limiter = throttle(max_hashing=2, max_addresses=3)
    assert limiter.admit(A, pair("slow"), 1000.0) is HASH
    for n in range(50):
        fail(limiter, "guess", now=1000.0, address=f"10.0.0.{n}")
    assert limiter.addresses == 3
    limiter.settle(A, pair("slow"), wrong=True, now=1000.0)
    assert limiter.wrong_pairs(A, 1000.0) == 1
    assert limiter.hashing == 0


def test_wrong_pairs_per_address_are_bounded_by_the_limit() -> None:
    limiter = throttle(per_address=5)
    now = 1000.0
    for n in range(1000):
        guess = pair(f"g{n}")
        if limiter.admit(A, guess, now) is HASH:
            limiter.settle(A, guess, wrong=True, now=now)
        assert limiter.wrong_pairs(A, now) <= 5
        now += 1.0


def test_stale_records_are_swept_and_empty_ones_never_kept() -> None:
    limiter = throttle()
    fail(limiter, "guess", now=1000.0)
    assert limiter.addresses == 1
    assert limiter.admit(B, pair("right", B), 1060.0) is HASH
    limiter.settle(B, pair("right", B), wrong=False, now=1060.0)
    assert limiter.addresses == 0  # A's pair left the window; B holds nothing


def test_settling_twice_or_unknown_changes_nothing() -> None:
    limiter = throttle()
    assert limiter.admit(A, RIGHT, 1000.0) is HASH
    limiter.settle(A, RIGHT, wrong=False, now=1000.0)
    limiter.settle(A, RIGHT, wrong=True, now=1000.0)
    limiter.settle(B, RIGHT, wrong=True, now=1000.0)
    assert (limiter.hashing, limiter.addresses, limiter.wrong_pairs(A, 1000.0)) == (0, 0, 0)


def test_pair_digest() -> None:
    md5 = "e10adc3949ba59abbe56e057f20f883e"
    digest = pair_digest(KEY, A, "admin", md5)
    assert len(digest) == 16
    assert digest == pair_digest(KEY, A, "admin", md5.upper())  # the MD5 in either case
    others = [
        pair_digest(b"o" * 32, A, "admin", md5),
        pair_digest(KEY, B, "admin", md5),
        pair_digest(KEY, A, "Admin", md5),
        pair_digest(KEY, A, "admin", md5[:-1] + "f"),
        pair_digest(KEY, A, "admin\0" + md5, ""),
    ]
    assert digest not in others
    assert md5.encode() not in digest and bytes.fromhex(md5) not in digest


def test_repr_tells_counts_only() -> None:
    limiter = throttle()
    fail(limiter, "guess", now=1000.0)
    assert repr(limiter) == "<LoginThrottle: 1 addresses, 0 hashing>"


def test_an_address_table_smaller_than_the_queue_is_refused() -> None:
    with pytest.raises(ValueError, match="max_addresses must exceed max_hashing"):
        LoginThrottle(max_hashing=8, max_addresses=8)
