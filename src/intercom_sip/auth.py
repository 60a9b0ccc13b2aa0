"""The administrator: password hashing, bearer tokens and the login throttle.

Pure: the clock and the random source come in as values.
"""

import hashlib
import hmac
from collections import deque
from collections.abc import Callable
from typing import Final

from intercom_sip.store import Credential

FACTORY_PASSWORD: Final = "123456"  # noqa: S105 (the vendor's documented factory password)
ADMIN: Final = "admin"
TOKEN_LIFETIME: Final = 2 * 3600.0  # seconds from issue, no sliding
LOGIN_LIMIT: Final = 5  # wrong pairs ...
LOGIN_WINDOW: Final = 60.0  # ... within this many seconds
SALT_BYTES: Final = 16
_SCRYPT: Final = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}  # ~50 ms, 16 MiB
_MAX_TRACKED: Final = 4096  # client addresses the throttle remembers

Clock = Callable[[], float]
RandomBytes = Callable[[int], bytes]


def md5_hex(password: str) -> str:
    """What the vendor's clients send for a password (not for security: the API says so)."""
    return hashlib.md5(password.encode(), usedforsecurity=False).hexdigest()


def make_credential(md5hex: str, salt: bytes) -> Credential:
    return Credential(salt, _hash(md5hex, salt))


def verify(credential: Credential, md5hex: str) -> bool:
    """Slow on purpose (scrypt): call it off the event loop."""
    return hmac.compare_digest(_hash(md5hex, credential.salt), credential.hash)


def is_factory(credential: Credential) -> bool:
    return verify(credential, md5_hex(FACTORY_PASSWORD))


def _hash(md5hex: str, salt: bytes) -> bytes:
    # The MD5 hex is what a login carries, in either case: hash its lower-case form.
    return hashlib.scrypt(md5hex.lower().encode(), salt=salt, **_SCRYPT)


class Tokens:
    """Bearer tokens in memory: a restart ends them all, as on the device."""

    def __init__(self, clock: Clock, random: RandomBytes) -> None:
        self._clock, self._random = clock, random
        # Keyed by a digest of the token, so a lookup's timing tells nothing of it.
        self._expiry: dict[bytes, float] = {}

    def issue(self) -> str:
        now = self._clock()
        self._expiry = {key: end for key, end in self._expiry.items() if end > now}
        token = self._random(20).hex()
        self._expiry[_key(token)] = now + TOKEN_LIFETIME
        return token

    def valid(self, token: str) -> bool:
        end = self._expiry.get(_key(token))
        return end is not None and end > self._clock()

    def revoke(self, token: str) -> None:
        self._expiry.pop(_key(token), None)

    def clear(self) -> None:
        self._expiry.clear()

    def __repr__(self) -> str:
        return f"<Tokens: {len(self._expiry)} issued>"


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class LoginThrottle:
    """At most LOGIN_LIMIT wrong pairs per client address within LOGIN_WINDOW seconds."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def blocked(self, address: str) -> bool:
        failures = self._failures.get(address)
        if failures is None:
            return False
        horizon = self._clock() - LOGIN_WINDOW
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[address]
        return len(failures) >= LOGIN_LIMIT

    def failed(self, address: str) -> None:
        if address not in self._failures and len(self._failures) >= _MAX_TRACKED:
            del self._failures[next(iter(self._failures))]  # forget the longest-known
        self._failures.setdefault(address, deque(maxlen=LOGIN_LIMIT)).append(self._clock())
