"""The administrator's credential: password hashing and bearer tokens.

Pure: the clock and the random source come in as values.
"""

import hashlib
import hmac
from collections.abc import Callable
from typing import Final

from intercom_sip.store import Credential

FACTORY_PASSWORD: Final = "123456"  # noqa: S105 (the vendor's documented factory password)
ADMIN: Final = "admin"
TOKEN_LIFETIME: Final = 2 * 3600.0  # seconds from issue, no sliding
MAX_TOKENS: Final = 1000  # live at once; one more ends the oldest
SALT_BYTES: Final = 16
_SCRYPT: Final = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}  # ~50 ms, 16 MiB

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
    """Bearer tokens in memory: a restart ends them all, as on the device.

    At most `cap` live at once: issuing one more ends the oldest (some clients log in
    before every call and never log out).
    """

    def __init__(self, clock: Clock, random: RandomBytes, cap: int = MAX_TOKENS) -> None:
        self._clock, self._random, self._cap = clock, random, cap
        # Keyed by a digest of the token, so a lookup's timing tells nothing of it.
        # Insertion order is issue order, hence expiry order: every token lives as long.
        self._expiry: dict[bytes, float] = {}

    def issue(self) -> str:
        now = self._clock()
        self._drop_expired(now)
        while len(self._expiry) >= self._cap:
            del self._expiry[next(iter(self._expiry))]  # the oldest ends
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

    def __len__(self) -> int:
        return len(self._expiry)

    def __repr__(self) -> str:
        return f"<Tokens: {len(self._expiry)} issued>"

    def _drop_expired(self, now: float) -> None:
        while self._expiry:
            key = next(iter(self._expiry))
            if self._expiry[key] > now:
                return
            del self._expiry[key]


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
