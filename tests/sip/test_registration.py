"""The registration machine driven through its transitions by a fake clock (values)."""

import random

import pytest

from intercom_sip.sip.registration import (
    Account,
    Challenge,
    RegisterReply,
    Registration,
    Send,
    State,
    Timers,
)

ACCOUNT = Account("101", "secret1", 30)
NONCE_A = Challenge('Digest realm="r", nonce="a"', "a", proxy=False)
NONCE_B = Challenge('Digest realm="r", nonce="b"', "b", proxy=False)
OK_30 = RegisterReply(200, "OK", granted=30)


def machine(timers: Timers | None = None) -> Registration:
    return Registration(ACCOUNT, random.Random(7), timers or Timers())


def registered(now: float = 0.0) -> Registration:
    reg = machine()
    reg.register(now)
    reg.on_answer(RegisterReply(401, "Unauthorized", NONCE_A), now)
    assert reg.on_answer(OK_30, now) is None
    return reg


def test_first_register_then_challenge_then_bound() -> None:
    reg = machine()
    assert reg.register(100.0) == Send(cseq=1, expires=30, credentials=None, nonce_count=0)
    assert (reg.state, reg.last_attempt) == (State.REGISTERING, 100.0)
    again = reg.on_answer(RegisterReply(401, "Unauthorized", NONCE_A), 100.1)
    assert again == Send(cseq=2, expires=30, credentials=NONCE_A, nonce_count=1)
    assert reg.on_answer(OK_30, 100.2) is None
    assert (reg.state, reg.code, reg.reason, reg.granted) == (State.REGISTERED, 200, "OK", 30)
    assert reg.bound_until == 130.1  # counted from when the request left
    assert reg.next_at == 125.1  # 30 s grant, refreshed 5 s before it runs out


def test_refresh_reuses_call_id_and_cached_nonce() -> None:
    reg = registered()
    call_id = reg.call_id
    assert not reg.due(24.9)
    assert reg.due(25.0)
    refresh = reg.register(25.0)
    assert refresh == Send(cseq=3, expires=30, credentials=NONCE_A, nonce_count=2)
    assert reg.next_at is None  # in flight: the answer sets the next timer, not the past one
    assert reg.call_id == call_id
    assert reg.shown_state(25.0) is State.REGISTERED  # a refresh in flight stays registered
    assert reg.on_answer(OK_30, 25.01) is None
    assert reg.next_at == 50.0


def test_long_grant_refreshes_at_ninety_percent() -> None:
    reg = machine()
    reg.register(0.0)
    reg.on_answer(RegisterReply(200, "OK", granted=600), 0.0)
    assert reg.next_at == 540.0


def test_stale_nonce_is_answered_again() -> None:
    reg = registered()
    reg.register(25.0)
    stale = Challenge('Digest nonce="a", stale=true', "a", proxy=False, stale=True)
    assert reg.on_answer(RegisterReply(401, "Unauthorized", stale), 25.0) == Send(4, 30, stale, 1)


def test_new_nonce_on_refresh_is_answered_once() -> None:
    reg = registered()
    reg.register(25.0)
    assert reg.on_answer(RegisterReply(401, "Unauthorized", NONCE_B), 25.0) == Send(
        4, 30, NONCE_B, 1
    )
    assert reg.on_answer(RegisterReply(401, "Unauthorized", NONCE_B), 25.0) is None
    assert reg.state is State.FAILED


def test_second_401_for_the_same_nonce_waits_a_minute_or_more() -> None:
    timers = Timers()
    for seed in range(20):
        reg = Registration(ACCOUNT, random.Random(seed), timers)
        reg.register(0.0)
        reg.on_answer(RegisterReply(401, "Unauthorized", NONCE_A), 0.0)
        assert reg.on_answer(RegisterReply(401, "Unauthorized", NONCE_A), 1.0) is None
        assert (reg.state, reg.code) == (State.FAILED, 401)
        assert reg.next_at is not None
        assert 61.0 <= reg.next_at <= 76.0  # a minute, plus up to a quarter
        assert reg.shown_state(1.0) is State.FAILED


@pytest.mark.parametrize("code", [403, 407])
def test_forbidden_waits_a_minute(code: int) -> None:
    reg = machine()
    reg.register(0.0)
    assert reg.on_answer(RegisterReply(code, "Forbidden"), 0.5) is None
    assert reg.state is State.FAILED
    assert reg.next_at is not None
    assert reg.next_at >= 60.5


def test_407_is_answered_with_proxy_credentials() -> None:
    reg = machine()
    reg.register(0.0)
    proxy = Challenge('Digest nonce="p"', "p", proxy=True)
    assert reg.on_answer(RegisterReply(407, "Proxy Authentication Required", proxy), 0.0) == Send(
        2, 30, proxy, 1
    )


def test_423_adopts_min_expires_at_once() -> None:
    reg = machine()
    reg.register(0.0)
    reg.on_answer(RegisterReply(401, "Unauthorized", NONCE_A), 0.0)
    assert reg.on_answer(RegisterReply(423, "Interval Too Brief", min_expires=60), 0.0) == Send(
        3, 60, NONCE_A, 2
    )
    reg.on_answer(RegisterReply(200, "OK", granted=60), 0.0)
    assert (reg.state, reg.granted, reg.expires_asked) == (State.REGISTERED, 60, 60)


def test_423_without_a_higher_min_expires_backs_off() -> None:
    reg = machine()
    reg.register(0.0)
    assert reg.on_answer(RegisterReply(423, "Interval Too Brief", min_expires=20), 0.0) is None
    assert reg.state is State.FAILED


def test_backoff_doubles_to_five_minutes_with_jitter_and_never_gives_up() -> None:
    reg = machine()
    now = 0.0
    delays = []
    for _ in range(14):
        reg.register(now)
        reg.on_failure("timeout", now)
        assert reg.next_at is not None
        delays.append(reg.next_at - now)
        now = reg.next_at
        assert reg.due(now)
    bases = [min(300.0, 2.0**i) for i in range(14)]
    for delay, base in zip(delays, bases, strict=True):
        assert base * 0.8 <= delay <= base * 1.2
    assert (reg.state, reg.code, reg.reason) == (State.FAILED, None, "timeout")


@pytest.mark.parametrize("code", [500, 503, 480, 604, 302])
def test_other_failures_back_off(code: int) -> None:
    reg = machine()
    reg.register(0.0)
    reg.on_answer(RegisterReply(code, "Nope"), 0.0)
    assert reg.state is State.FAILED
    assert reg.next_at is not None
    assert 0.8 <= reg.next_at <= 1.2


def test_success_resets_the_backoff() -> None:
    reg = machine()
    for now in (0.0, 10.0, 20.0):
        reg.register(now)
        reg.on_failure("timeout", now)
    reg.register(30.0)
    reg.on_answer(OK_30, 30.0)
    reg.register(55.0)
    reg.on_failure("timeout", 55.0)
    assert reg.next_at is not None
    assert 55.8 <= reg.next_at <= 56.2


def test_failed_refresh_stays_registered_until_expiry() -> None:
    reg = registered()
    reg.register(25.0)
    reg.on_failure("timeout", 25.0)
    assert reg.shown_state(29.0) is State.REGISTERED
    assert reg.shown_state(30.0) is State.FAILED


def test_2xx_without_our_binding_fails() -> None:
    reg = machine()
    reg.register(0.0)
    reg.on_answer(RegisterReply(200, "OK", granted=0), 0.0)
    assert reg.state is State.FAILED


def test_update_reregisters_the_same_binding_at_once() -> None:
    reg = registered()
    send = reg.update(Account("101", "n3w-pass", 60), 10.0)
    assert send == Send(cseq=3, expires=60, credentials=NONCE_A, nonce_count=2)
    assert reg.account.password == "n3w-pass"


def test_update_of_the_auth_user_forgets_the_challenge() -> None:
    reg = registered()
    send = reg.update(Account("auth7", "secret1", 30), 10.0)
    assert send == Send(cseq=3, expires=30, credentials=None, nonce_count=0)


def test_unregister_sends_expires_zero_then_disabled() -> None:
    reg = registered()
    assert reg.unregister(10.0) == Send(cseq=3, expires=0, credentials=NONCE_A, nonce_count=2)
    assert reg.state is State.UNREGISTERING
    assert reg.on_answer(RegisterReply(200, "OK"), 10.0) is None
    assert (reg.state, reg.bound_until, reg.next_at) == (State.DISABLED, 0.0, None)


def test_unregister_answers_a_challenge_once() -> None:
    reg = registered()
    reg.unregister(10.0)
    assert reg.on_answer(RegisterReply(401, "Unauthorized", NONCE_B), 10.0) == Send(
        4, 0, NONCE_B, 1
    )
    assert reg.on_answer(RegisterReply(401, "Unauthorized", NONCE_B), 10.0) is None
    assert reg.state is State.DISABLED


def test_unregister_with_nothing_bound_is_immediate() -> None:
    reg = machine()
    assert reg.unregister(0.0) is None
    assert reg.state is State.DISABLED


def test_unregister_gives_up_on_timeout() -> None:
    reg = registered()
    reg.unregister(10.0)
    reg.on_failure("timeout", 42.0)
    assert reg.state is State.DISABLED


def test_flow_closed_reregisters_at_once() -> None:
    reg = registered()
    assert reg.on_flow_closed(3.0) == Send(cseq=3, expires=30, credentials=NONCE_A, nonce_count=2)
    disabled = machine()
    assert disabled.on_flow_closed(3.0) is None


def test_answers_after_disable_are_ignored() -> None:
    reg = machine()
    assert reg.on_answer(OK_30, 0.0) is None
    assert reg.state is State.DISABLED


def test_password_never_in_repr() -> None:
    assert "secret1" not in repr(ACCOUNT)


# --- a 401/407 reads by what the REGISTER carried (RFC 7616 §3.3) ----------------------


def challenge(nonce: str, stale: bool = False, proxy: bool = False) -> Challenge:
    header = f'Digest realm="r", nonce="{nonce}"' + (", stale=true" if stale else "")
    return Challenge(header, nonce, proxy=proxy, stale=stale)


def unauthorized(nonce: str, stale: bool = False) -> RegisterReply:
    return RegisterReply(401, "Unauthorized", challenge(nonce, stale))


def test_new_nonce_with_every_401_fails_after_two_registers() -> None:
    reg = machine()
    sent = [reg.register(0.0)]
    sent.append(reg.on_answer(unauthorized("n1"), 0.1))
    assert reg.on_answer(unauthorized("n2"), 0.2) is None  # our answer to n1 refused
    assert sent == [Send(1, 30, None, 0), Send(2, 30, challenge("n1"), 1)]
    assert (reg.state, reg.code, reg.reason) == (State.FAILED, 401, "Unauthorized")
    assert reg.next_at is not None
    assert 60.2 <= reg.next_at <= 75.2


def test_a_refreshing_registrar_is_retried_only_after_the_auth_retry_time() -> None:
    """Ten minutes against a registrar with a new nonce every 401: 2 REGISTERs a minute."""
    reg = machine()
    nonces = (f"n{i}" for i in range(10_000))
    now, sent = 0.0, 0
    send: Send | None = reg.register(now)
    while now < 600.0 and sent < 1000:
        if send is not None:
            sent += 1
            send = reg.on_answer(unauthorized(next(nonces)), now)
            continue
        assert reg.state is State.FAILED
        assert reg.next_at is not None
        assert reg.next_at - now >= 60.0
        now = reg.next_at
        send = reg.register(now)
    assert 2 * 8 <= sent <= 2 * 10 + 2  # an attempt each 60-75 s, two REGISTERs each


def test_a_cached_nonce_refused_is_answered_once_then_the_new_one_refused() -> None:
    reg = registered()
    assert reg.register(25.0) == Send(3, 30, NONCE_A, 2)  # the cached nonce, nc+1
    # No stale=true, as many servers do: the nonce expired; answered once.
    assert reg.on_answer(unauthorized("b"), 25.1) == Send(4, 30, challenge("b"), 1)
    assert reg.on_answer(unauthorized("c"), 25.2) is None
    assert (reg.state, reg.code) == (State.FAILED, 401)
    assert reg.shown_state(25.2) is State.REGISTERED  # still bound until 30.0


def test_a_cached_nonce_refused_then_granted() -> None:
    reg = registered()
    reg.register(25.0)
    reg.on_answer(unauthorized("b"), 25.1)
    assert reg.on_answer(OK_30, 25.2) is None
    assert reg.state is State.REGISTERED
    assert reg.register(50.0) == Send(5, 30, challenge("b"), 2)  # b is kept now


def test_stale_after_a_fresh_answer_is_answered_once_more() -> None:
    reg = machine()
    reg.register(0.0)
    reg.on_answer(unauthorized("n1"), 0.0)
    assert reg.on_answer(unauthorized("n2", stale=True), 0.1) == Send(
        3, 30, challenge("n2", stale=True), 1
    )
    assert reg.on_answer(OK_30, 0.2) is None
    assert reg.state is State.REGISTERED


def test_stale_forever_is_bounded() -> None:
    reg = machine()
    reg.register(0.0)
    sends = [reg.on_answer(unauthorized("n1", stale=True), 0.0)]
    sends += [reg.on_answer(unauthorized(f"s{i}", stale=True), 0.1) for i in range(3)]
    assert sends == [
        Send(2, 30, challenge("n1", stale=True), 1),
        Send(3, 30, challenge("s0", stale=True), 1),
        None,
        None,
    ]
    assert (reg.state, reg.code) == (State.FAILED, 401)


def test_the_stale_bound_is_per_attempt() -> None:
    reg = machine()
    reg.register(0.0)
    reg.on_answer(unauthorized("n1"), 0.0)
    reg.on_answer(unauthorized("n2", stale=True), 0.0)
    reg.on_answer(OK_30, 0.0)
    reg.register(25.0)
    reg.on_answer(unauthorized("n3"), 25.0)  # cached n2 expired
    assert reg.on_answer(unauthorized("n4", stale=True), 25.0) == Send(
        6, 30, challenge("n4", stale=True), 1
    )


def test_407_with_a_new_nonce_every_time_fails_after_two_registers() -> None:
    reg = machine()
    reg.register(0.0)
    first = RegisterReply(407, "Proxy Authentication Required", challenge("p1", proxy=True))
    assert reg.on_answer(first, 0.0) == Send(2, 30, challenge("p1", proxy=True), 1)
    again = RegisterReply(407, "Proxy Authentication Required", challenge("p2", proxy=True))
    assert reg.on_answer(again, 0.1) is None
    assert (reg.state, reg.code) == (State.FAILED, 407)
    assert reg.next_at is not None
    assert reg.next_at >= 60.1


def test_unregister_refused_with_a_new_nonce_gives_up() -> None:
    reg = registered()
    assert reg.unregister(10.0) == Send(3, 0, NONCE_A, 2)
    assert reg.on_answer(unauthorized("b"), 10.0) == Send(4, 0, challenge("b"), 1)
    assert reg.on_answer(unauthorized("c"), 10.1) is None
    assert (reg.state, reg.next_at) == (State.DISABLED, None)


def test_unregister_with_stale_forever_gives_up() -> None:
    reg = registered()
    reg.unregister(10.0)
    sends = [reg.on_answer(unauthorized(f"s{i}", stale=True), 10.0) for i in range(4)]
    assert [s.expires if s else None for s in sends] == [0, 0, None, None]
    assert reg.state is State.DISABLED


def test_423_after_a_fresh_answer_then_a_new_nonce_is_answered_once() -> None:
    reg = machine()
    reg.register(0.0)
    reg.on_answer(unauthorized("n1"), 0.0)
    assert reg.on_answer(RegisterReply(423, "Interval Too Brief", min_expires=60), 0.0) == Send(
        3, 60, challenge("n1"), 2
    )
    # A one-time nonce: the registrar took n1 once, for the 423.
    assert reg.on_answer(unauthorized("n2"), 0.0) == Send(4, 60, challenge("n2"), 1)
    assert reg.on_answer(unauthorized("n3"), 0.0) is None
    assert reg.state is State.FAILED
