"""The administrator's session: login, tokens, and noticing a password change."""

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final

from intercom_sip.admin import credentials as auth
from intercom_sip.admin import throttle
from intercom_sip.admin.throttle import Admission, LoginThrottle
from intercom_sip.store import Credential, Store
from intercom_sip.worker import Offload

log = logging.getLogger(__name__)

_PAIR_KEY_BYTES: Final = 32
_HASHING_PER_THREAD: Final = 8  # hashes waiting for the pool, per thread, before 429s


class LoginResult(Enum):
    OK = "ok"
    WRONG = "wrong"
    THROTTLED = "throttled"


# The admissions answered without hashing.
_AT_ONCE: Final = {
    Admission.BLOCKED: LoginResult.THROTTLED,
    Admission.BUSY: LoginResult.THROTTLED,
    Admission.KNOWN_WRONG: LoginResult.WRONG,
}


def _max_hashing(threads: int) -> int:
    # Well above one address's share, so that a flood from a few addresses leaves room.
    return max(_HASHING_PER_THREAD * threads, 4 * throttle.HASHING_PER_ADDRESS)


def _per_address(threads: int) -> int:
    """One address's hashes at once: fewer than the pool's threads (one at least), so that
    a flood from one address never holds them all and a login from another starts hashing
    at once. With the service's two threads, one: holding both, a flood made the right
    login from elsewhere wait out a flood hash before its own (660 ms on a loaded machine
    in hostile finding 5, against 500)."""
    return max(1, min(throttle.HASHING_PER_ADDRESS, threads - 1))


@dataclass(frozen=True)
class Login:
    result: LoginResult
    token: str | None = None

    def __repr__(self) -> str:
        return f"Login({self.result.value})"


class Admin:
    """Checks logins against the stored credential and keeps the tokens it issued.

    The command line changes the password in the store; the store's credential stamp
    tells, and then every token ends and no wrong pair is remembered as wrong.
    """

    def __init__(
        self,
        store: Store,
        hasher: Offload,
        clock: auth.Clock = time.monotonic,
        random: auth.RandomBytes = os.urandom,
        max_tokens: int = auth.MAX_TOKENS,
    ) -> None:
        self._store, self._hasher, self._clock, self._random = store, hasher, clock, random
        self._tokens = auth.Tokens(clock, random, max_tokens)
        self._throttle = LoginThrottle(
            max_hashing=_max_hashing(hasher.threads), per_address=_per_address(hasher.threads)
        )
        self._pair_key = random(_PAIR_KEY_BYTES)
        self._hashing: dict[bytes, asyncio.Future[bool]] = {}  # pair -> its hash, once
        self._stamp = store.credential_stamp()
        self._credential = self._read_credential()
        self.watched = False  # True while something calls notice_changes() for us

    async def login(self, username: str, md5hex: str, address: str) -> Login:
        # Everything up to the await decides and counts, so concurrent logins cannot
        # all slip past the throttle while the first ones are still hashing.
        self.notice_changes()
        pair = throttle.pair_digest(self._pair_key, address, username, md5hex)
        admission = self._throttle.admit(address, pair, self._clock())
        answer = _AT_ONCE.get(admission)
        if answer is not None:
            return Login(answer)
        if admission is Admission.HASH:
            if username != auth.ADMIN:  # wrong whatever the password: no hash needed
                self._failed(address, pair)
                return Login(LoginResult.WRONG)
            self._hashing[pair] = self._start_hash(address, pair, md5hex)
        # Shielded: a client that leaves does not stop the hash, so its slot is held
        # until the pool is really done with it.
        key = self._pair_key
        right = await asyncio.shield(self._hashing[pair])
        self.notice_changes()
        if not right or key is not self._pair_key:  # right for a password now replaced
            return Login(LoginResult.WRONG)
        return Login(LoginResult.OK, self._tokens.issue())

    def _start_hash(self, address: str, pair: bytes, md5hex: str) -> "asyncio.Future[bool]":
        credential = self._credential
        task = asyncio.ensure_future(self._hasher.run(lambda: auth.verify(credential, md5hex)))
        task.add_done_callback(functools.partial(self._hashed, address, pair))
        return task

    def _hashed(self, address: str, pair: bytes, task: "asyncio.Future[bool]") -> None:
        # Registered before any waiter's callback: the count is settled before a
        # waiter resumes.
        self._hashing.pop(pair, None)
        if not task.cancelled() and task.exception() is None and not task.result():
            self._failed(address, pair)
        else:  # right, or the pool failed (shutting down): no guess was judged
            self._throttle.settle(address, pair, wrong=False, now=self._clock())

    def _failed(self, address: str, pair: bytes) -> None:
        self._throttle.settle(address, pair, wrong=True, now=self._clock())
        log.info("failed login from %s", address)

    def authorized(self, token: str) -> bool:
        if not self.watched:
            self.notice_changes()
        return self._tokens.valid(token)

    def logout(self, token: str) -> None:
        self._tokens.revoke(token)

    def notice_changes(self) -> None:
        """End every token if the credential changed since we last looked."""
        stamp = self._store.credential_stamp()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        credential = self._read_credential()
        if credential != self._credential:
            log.info("administrator's password changed: every token ends")
            self._tokens.clear()
            self._pair_key = self._random(_PAIR_KEY_BYTES)  # no pair is known wrong now
            self._credential = credential

    def _read_credential(self) -> Credential:
        credential = self._store.load_credential()
        if credential is None:  # the store makes one at first open; be safe anyway
            raise RuntimeError("the store holds no administrator credential")
        return credential


def ensure_credential(store: Store, factory: Callable[[], Credential] | None = None) -> Credential:
    """The stored credential; the factory one (admin / 123456) is stored first if none is,
    made by `factory` if given (a building hashes it once for all its monitors)."""
    credential = store.load_credential()
    if credential is None:
        credential = (
            factory()
            if factory is not None
            else auth.make_credential(
                auth.md5_hex(auth.FACTORY_PASSWORD), os.urandom(auth.SALT_BYTES)
            )
        )
        store.save_credential(credential, time.time())
    return credential
