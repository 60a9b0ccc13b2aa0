"""The login throttle of contract §2: decide at once, before any hashing starts.

Pure: the time comes in as a value; the pair digests come in already keyed. One record
per client address holds the distinct wrong pairs of the window and the pairs being
hashed now. A login is admitted to hashing only while its address's wrong pairs plus
its hashes in flight stay under the limit, so a flood of concurrent guesses gets at
most LIMIT hashes per window; the rest answer at once, without queueing.
"""

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

LOGIN_LIMIT: Final = 5  # distinct wrong pairs ...
LOGIN_WINDOW: Final = 60.0  # ... within this many seconds
MAX_ADDRESSES: Final = 4096  # client addresses remembered at once
HASHING_PER_ADDRESS: Final = 2  # distinct pairs of one address hashed at once, at most
# (Admin keeps it below the hashing pool's threads: one address never holds them all)
_SWEEP: Final = 2  # stale records dropped per admission: old digests do not linger


class Admission(Enum):
    """What to do with a login, decided before the first await."""

    HASH = "hash"  # a slot is reserved: hash, then settle()
    SHARE = "share"  # the same pair from this address is being hashed: wait for that
    KNOWN_WRONG = "known wrong"  # wrong within the window already: 400, no hash, no count
    BLOCKED = "blocked"  # 429: LOGIN_LIMIT wrong pairs, or its slots all in flight
    BUSY = "busy"  # 429: the hashing queue, or this address's share of it, is full


def pair_digest(key: bytes, address: str, username: str, md5hex: str) -> bytes:
    """A keyed digest of one login: equal for the same pair, telling nothing of the MD5.

    The key lives in memory only and changes with the password, so an old digest never
    matches again and no table holds anything that could log in.
    """
    message = json.dumps([address, username, md5hex.lower()])  # unambiguous, any text
    return hmac.digest(key, message.encode(), hashlib.sha256)[:16]


@dataclass
class _Record:
    wrong: dict[bytes, float] = field(default_factory=dict)  # pair -> last seen, oldest first
    hashing: set[bytes] = field(default_factory=set)

    def prune(self, horizon: float) -> None:
        while self.wrong:
            pair, seen = next(iter(self.wrong.items()))
            if seen > horizon:
                return
            del self.wrong[pair]

    def stale(self, horizon: float) -> bool:
        newest = next(reversed(self.wrong.values()), horizon)
        return not self.hashing and newest <= horizon


class LoginThrottle:
    """At most `limit` distinct wrong pairs per client address within `window` seconds.

    `max_hashing` bounds the hashes in flight over all addresses: past it a login
    answers 429 rather than queue behind the others. One address has at most
    `per_address` in flight (and never more than its `limit` left), so a flood from
    one address takes a small part of that budget. A right pair does not need two
    slots: the same pair again from the same address shares the hash in flight.
    """

    def __init__(
        self,
        max_hashing: int,
        limit: int = LOGIN_LIMIT,
        window: float = LOGIN_WINDOW,
        max_addresses: int = MAX_ADDRESSES,
        per_address: int = HASHING_PER_ADDRESS,
    ) -> None:
        if max_addresses <= max_hashing:
            raise ValueError("max_addresses must exceed max_hashing, or no record is evictable")
        self._max_hashing, self._limit, self._window = max_hashing, limit, window
        self._max_addresses, self._per_address = max_addresses, per_address
        self._records: dict[str, _Record] = {}  # least recently active first
        self._hashing = 0

    def admit(self, address: str, pair: bytes, now: float) -> Admission:
        horizon = now - self._window
        self._sweep(horizon)
        record = self._records.get(address) or _Record()
        record.prune(horizon)
        admission = self._decide(record, pair)
        if admission is Admission.KNOWN_WRONG:
            record.wrong.pop(pair)
            record.wrong[pair] = now  # seen again: it stays in the window, counted once
        elif admission is Admission.HASH:
            record.hashing.add(pair)
            self._hashing += 1
        self._keep(address, record)
        return admission

    def settle(self, address: str, pair: bytes, wrong: bool, now: float) -> None:
        """The hash of an admitted pair is done: count it if it was wrong."""
        record = self._records.get(address)
        if record is None or pair not in record.hashing:
            return  # already settled (or never admitted): nothing is held for it
        record.hashing.discard(pair)
        self._hashing -= 1
        if wrong:
            record.wrong.pop(pair, None)
            record.wrong[pair] = now
        self._keep(address, record)

    def wrong_pairs(self, address: str, now: float) -> int:
        record = self._records.get(address)
        if record is None:
            return 0
        record.prune(now - self._window)
        return len(record.wrong)

    @property
    def hashing(self) -> int:
        return self._hashing

    @property
    def addresses(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        return f"<LoginThrottle: {len(self._records)} addresses, {self._hashing} hashing>"

    def _decide(self, record: _Record, pair: bytes) -> Admission:
        if len(record.wrong) >= self._limit:
            return Admission.BLOCKED
        if pair in record.wrong:
            return Admission.KNOWN_WRONG
        if pair in record.hashing:
            return Admission.SHARE
        if len(record.wrong) + len(record.hashing) >= self._limit:
            return Admission.BLOCKED  # its slots are all in flight: none left to guess with
        if len(record.hashing) >= self._per_address or self._hashing >= self._max_hashing:
            return Admission.BUSY
        return Admission.HASH

    def _keep(self, address: str, record: _Record) -> None:
        """Store the record as the most recently active, or drop it when it holds nothing."""
        self._records.pop(address, None)
        if not record.wrong and not record.hashing:
            return
        if len(self._records) >= self._max_addresses:
            self._evict()
        self._records[address] = record

    def _evict(self) -> None:
        # The least recently active record that holds no slot: a slot must be settled.
        # At most max_hashing records hold one, so this finds one soon.
        for address, record in self._records.items():
            if not record.hashing:
                del self._records[address]
                return

    def _sweep(self, horizon: float) -> None:
        for _ in range(_SWEEP):
            oldest = next(iter(self._records), None)
            if oldest is None or not self._records[oldest].stale(horizon):
                return
            del self._records[oldest]
