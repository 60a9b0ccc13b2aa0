"""SRTP keys in SDP (RFC 4568 SDES): the `a=crypto` lines of one suite, read and written.

Only `AES_CM_128_HMAC_SHA1_80` with a single inline key, no MKI and no session
parameters is taken: that is what libsrtp's SDES peers (baresip, Asterisk) send.
"""

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Final

SUITE: Final = "AES_CM_128_HMAC_SHA1_80"
KEY_BYTES: Final = 30  # a 128-bit master key, then a 112-bit master salt

# tag, suite, inline:<key||salt>, an optional lifetime (digits or 2^n); nothing after.
_CRYPTO = re.compile(r"([0-9]{1,9}) (\S+) inline:([A-Za-z0-9+/=]+)(?:\|(?:2\^)?[0-9]+)?")


@dataclass(frozen=True)
class Crypto:
    tag: str
    key: bytes = field(repr=False)


def parse_crypto(value: str) -> Crypto | None:
    """An `a=crypto` value we can use, or None."""
    match = _CRYPTO.fullmatch(value)
    if match is None or match[2] != SUITE:
        return None
    try:
        key = base64.b64decode(match[3], validate=True)
    except binascii.Error:
        return None
    return Crypto(match[1], key) if len(key) == KEY_BYTES else None


def first_usable(values: list[str], tags: set[str] | None = None) -> Crypto | None:
    """The first usable crypto line, among those with one of `tags` if given."""
    usable = (parse_crypto(value) for value in values)
    return next((c for c in usable if c and (tags is None or c.tag in tags)), None)


def crypto_value(crypto: Crypto) -> str:
    return f"{crypto.tag} {SUITE} inline:{base64.b64encode(crypto.key).decode()}"
