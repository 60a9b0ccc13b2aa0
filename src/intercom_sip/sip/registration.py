"""The registration state machine (RFC 3261 §10.2), pure: events in, actions out.

It owns its state and the numbers it needs (Call-ID, CSeq, nonce, granted expiry,
attempt count); the clock and the random source come in as values. The shell turns
`Send` into a REGISTER on the flow and `next_wakeup()` into a loop timer.

A 401/407 reads by what the REGISTER it answers carried (`ON_CHALLENGE`): a challenge to
a request without credentials, or with a nonce kept from an earlier transaction, is
answered; a challenge to our answer of the previous challenge is a refusal (RFC 7616
§3.3), unless it says stale=true, which is answered again, `MAX_STALE` times at most.
So a wrong password costs two REGISTERs per attempt, whatever nonces the server makes.
"""

import random
from dataclasses import dataclass, field
from enum import Enum
from typing import Final


class Carried(Enum):
    """The credentials the REGISTER in flight carries."""

    NOTHING = "nothing"
    CACHED = "cached"  # a nonce from an earlier transaction, at the next nonce count
    FRESH = "fresh"  # the answer to the challenge in the previous response


class ChallengeVerdict(Enum):
    ANSWER = "answer"
    ANSWER_IF_STALE_LEFT = "answer if stale left"
    REFUSED = "refused"


# A 401/407 by (what our REGISTER carried, stale=true): RFC 7616 §3.3, RFC 3261 §22.2.
ON_CHALLENGE: Final = {
    (Carried.NOTHING, False): ChallengeVerdict.ANSWER,
    (Carried.NOTHING, True): ChallengeVerdict.ANSWER,
    # A kept nonce the server no longer takes: it should say stale=true, many do not.
    (Carried.CACHED, False): ChallengeVerdict.ANSWER,
    (Carried.CACHED, True): ChallengeVerdict.ANSWER,
    # Our answer to its own fresh challenge refused: the credentials are wrong.
    (Carried.FRESH, False): ChallengeVerdict.REFUSED,
    (Carried.FRESH, True): ChallengeVerdict.ANSWER_IF_STALE_LEFT,
}
MAX_STALE: Final = 1  # stale answers to fresh credentials, in a row, per attempt


class State(Enum):
    DISABLED = "disabled"
    REGISTERING = "registering"
    REGISTERED = "registered"
    UNREGISTERING = "unregistering"
    FAILED = "failed"


@dataclass(frozen=True)
class Status:
    """What a registration shows (contract §5 without `sip_status`, which the settings
    decide): the machine's state and numbers, and the shell's contact and address."""

    state: str = "disabled"
    code: int | None = None
    reason: str | None = None
    expires: int | None = None
    next_refresh: int | None = None  # Unix time
    contact: str | None = None
    public_address: str | None = None
    transport: str | None = None
    register_last_attempt: int | None = None  # Unix time
    bound: bool = False  # a binding granted by the registrar is still valid


@dataclass(frozen=True)
class Account:
    """What the registrar sees of the settings; a change of any is a re-REGISTER."""

    auth_user: str
    password: str = field(repr=False)
    interval: int


@dataclass(frozen=True)
class Challenge:
    """A 401/407 challenge, as far as the machine needs it; the shell keeps the header."""

    header: str
    nonce: str
    proxy: bool  # 407: answer with Proxy-Authorization
    stale: bool = False


@dataclass(frozen=True)
class RegisterReply:
    """A final response to our REGISTER."""

    code: int
    reason: str
    challenge: Challenge | None = None
    min_expires: int | None = None
    granted: int | None = None  # the expiry the registrar granted our contact
    retry_after: int | None = None  # seconds the registrar asks us to wait (a 503's)


@dataclass(frozen=True)
class Send:
    """Send a REGISTER now; `credentials` answers that challenge with this nonce count."""

    cseq: int
    expires: int
    credentials: Challenge | None
    nonce_count: int


@dataclass(frozen=True)
class Timers:
    """Every delay of the machine; the service options may shorten them for tests."""

    auth_retry: float = 60.0  # after a refused password: no faster than once a minute
    auth_jitter: float = 0.25  # a fraction of auth_retry, added
    backoff_first: float = 1.0
    backoff_max: float = 300.0
    backoff_jitter: float = 0.2  # ± this fraction
    refresh_margin: float = 5.0  # refresh at least this long before expiry ...
    refresh_fraction: float = 0.1  # ... or this fraction of the grant, whichever is more
    # Up to this fraction of the grant earlier still, at random: monitors that registered
    # together (a building's start, a registrar back) drift apart instead of refreshing
    # in the same millisecond for ever. 0: no draw (the random source untouched).
    refresh_jitter: float = 0.0


AUTH_FAILURES: Final = frozenset({401, 403, 407})


class Registration:
    """One binding: an address of record, a contact, one Call-ID for its whole life."""

    def __init__(self, account: Account, rng: random.Random, timers: Timers = Timers()) -> None:
        self.account = account
        self.call_id = f"{rng.getrandbits(128):032x}"
        self._rng, self._timers = rng, timers
        self.state = State.DISABLED
        self.cseq = 0
        self.expires_asked = account.interval
        self.code: int | None = None
        self.reason: str | None = None
        self.granted: int | None = None
        self.bound_until = 0.0
        self.next_at: float | None = None  # refresh or retry
        self.last_attempt: float | None = None
        self._challenge: Challenge | None = None
        self._nonce_count = 0
        self._carried = Carried.NOTHING  # by the REGISTER in flight
        self._stale_answered = 0  # in this attempt
        self._sent_at = 0.0
        self._failures = 0

    # --- events --------------------------------------------------------------------

    def register(self, now: float) -> Send:
        """A REGISTER the agent decided to send: first, refresh, retry, or update."""
        self.state = State.REGISTERING
        self.last_attempt = now
        self.next_at = None  # the answer, or its absence, sets the next one
        self._stale_answered = 0
        return self._send(now, self.expires_asked)

    def update(self, account: Account, now: float) -> Send:
        """New password, auth user or interval: the same binding, re-registered at once."""
        if account.auth_user != self.account.auth_user:
            self._challenge = None
        self.account = account
        self.expires_asked = account.interval
        return self.register(now)

    def unregister(self, now: float) -> Send | None:
        """Remove the binding (Expires: 0); None when there is nothing to remove."""
        if not self.bound(now) and self.state is not State.REGISTERING:
            self._become_disabled()
            return None
        self.state = State.UNREGISTERING
        self.next_at = None
        self._stale_answered = 0
        return self._send(now, 0)

    def on_answer(self, answer: RegisterReply, now: float) -> Send | None:
        if self.state is State.DISABLED:
            return None
        self.code, self.reason = answer.code, answer.reason
        if answer.code in (401, 407) and answer.challenge is not None:
            return self._on_challenge(answer.challenge, now)
        if self.state is State.UNREGISTERING:
            self._become_disabled()
            return None
        if 200 <= answer.code < 300:
            self._on_granted(answer, now)
            return None
        if answer.code == 423 and answer.min_expires and answer.min_expires > self.expires_asked:
            self.expires_asked = answer.min_expires  # RFC 3261 §10.2.8: ask again at once
            return self._send(now, self.expires_asked)
        self._fail(now, auth=answer.code in AUTH_FAILURES)
        if answer.retry_after is not None and self.next_at is not None:
            # RFC 3261 §21.5.4: an overloaded registrar says when to come back: never
            # sooner, and up to the backoff's jitter later, so that a building's
            # monitors refused together do not all come back in the same millisecond.
            later = answer.retry_after * self._rng.uniform(1, 1 + self._timers.backoff_jitter)
            self.next_at = max(self.next_at, now + later)
        return None

    def on_failure(self, cause: str, now: float) -> None:
        """No answer: a timeout, a transport error, a DNS failure."""
        self.code, self.reason = None, cause
        if self.state is State.UNREGISTERING:
            self._become_disabled()  # bounded: the binding expires by itself
        elif self.state is not State.DISABLED:
            self._fail(now, auth=False)

    def on_flow_closed(self, now: float) -> Send | None:
        """A TCP/TLS connection dropped: the registrar may have lost us; register at once."""
        if self.state in (State.REGISTERED, State.REGISTERING, State.FAILED):
            return self.register(now)
        return None

    def due(self, now: float) -> bool:
        return self.next_at is not None and now >= self.next_at

    # --- what the status shows -------------------------------------------------------

    def bound(self, now: float) -> bool:
        return self.bound_until > now

    def shown_state(self, now: float) -> State:
        """A refresh in flight, or a failed one, keeps `registered` while bound."""
        if self.state in (State.REGISTERING, State.FAILED) and self.bound(now):
            return State.REGISTERED
        return self.state

    # --- inside ----------------------------------------------------------------------

    def _send(self, now: float, expires: int, fresh: bool = False) -> Send:
        self.cseq += 1
        self._sent_at = now
        credentials = self._challenge
        if credentials is None:
            self._carried = Carried.NOTHING
            return Send(self.cseq, expires, None, 0)
        self._nonce_count += 1
        self._carried = Carried.FRESH if fresh else Carried.CACHED
        return Send(self.cseq, expires, credentials, self._nonce_count)

    def _on_challenge(self, challenge: Challenge, now: float) -> Send | None:
        verdict = ON_CHALLENGE[self._carried, challenge.stale]
        if verdict is ChallengeVerdict.ANSWER_IF_STALE_LEFT and self._stale_answered < MAX_STALE:
            self._stale_answered += 1
            verdict = ChallengeVerdict.ANSWER
        if verdict is not ChallengeVerdict.ANSWER:
            self._refused(now)
            return None
        self._challenge = challenge
        self._nonce_count = 0
        expires = 0 if self.state is State.UNREGISTERING else self.expires_asked
        return self._send(now, expires, fresh=True)

    def _refused(self, now: float) -> None:
        """The registrar refused our credentials: no more answers in this attempt."""
        if self.state is State.UNREGISTERING:
            self._become_disabled()  # bounded: the binding expires by itself
        else:
            self._fail(now, auth=True)

    def _on_granted(self, answer: RegisterReply, now: float) -> None:
        granted = answer.granted if answer.granted is not None else self.expires_asked
        if granted <= 0:
            self._fail(now, auth=False)  # a 2xx that keeps no binding of ours
            return
        self.state = State.REGISTERED
        self.granted = granted
        self.bound_until = self._sent_at + granted
        margin = max(self._timers.refresh_margin, granted * self._timers.refresh_fraction)
        self.next_at = self._sent_at + max(granted - margin, granted / 2) - self._early(granted)
        self._failures = 0

    def _fail(self, now: float, auth: bool) -> None:
        self.state = State.FAILED
        self._failures += 1
        self.next_at = now + (self._auth_delay() if auth else self._backoff())
        if not self.bound(now):
            self.granted = None

    def _early(self, granted: int) -> float:
        jitter = self._timers.refresh_jitter
        return granted * self._rng.uniform(0, jitter) if jitter else 0.0

    def _auth_delay(self) -> float:
        t = self._timers
        return t.auth_retry * (1 + self._rng.uniform(0, t.auth_jitter))

    def _backoff(self) -> float:
        t = self._timers
        base = min(t.backoff_max, t.backoff_first * 2.0 ** min(self._failures - 1, 30))
        return base * self._rng.uniform(1 - t.backoff_jitter, 1 + t.backoff_jitter)

    def _become_disabled(self) -> None:
        self.state = State.DISABLED
        self.next_at = None
        self.bound_until = 0.0
        self.granted = None
