"""What `call/dial` may call (contract §6.3) and what `call/dtmf` may send (§6.5). Pure.

A number is a string of digits (the account's realm completes it), a full
`sip:user@host` URI, or `sip:<IPv4>` for a direct call. Each rule exists once as an
ECMA-262 pattern that Python reads the same way: the OpenAPI document carries it, the
parser below is built on it, and a test holds the two together.
"""

import re
from dataclasses import dataclass
from enum import Enum
from typing import Final

from intercom_sip.contract.fields import HOST_PATTERN
from intercom_sip.sip import syntax

_END: Final = "(?!\\n)$"  # `$` alone would also match before a final newline in Python
MAX_DIGITS: Final = 32
MAX_USER: Final = 64
# RFC 3261 §25.1 `user` without `;` and `?`, which would start URI parameters or headers.
_USER: Final = f"(?:[A-Za-z0-9\\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{{2}}){{1,{MAX_USER}}}"

DIGITS_PATTERN: Final = f"^[0-9]{{1,{MAX_DIGITS}}}{_END}"
DIRECT_PATTERN: Final = f"^sip:{syntax.IPV4}{_END}"
URI_PATTERN: Final = f"^sip:{_USER}@{HOST_PATTERN.removeprefix('^')}"
NUMBER_PATTERN: Final = "|".join(f"(?:{p})" for p in (DIGITS_PATTERN, DIRECT_PATTERN, URI_PATTERN))

DTMF_MAX: Final = 32
DTMF_PATTERN: Final = f"^[{syntax.DTMF_CHARS}]{{1,{DTMF_MAX}}}{_END}"
DTMF_TEXT: Final = f"must be 1 to {DTMF_MAX} of 0-9, *, #, A-D"

DIRECT_PORT: Final = 5060  # a direct call goes to this port, over UDP (§6.3)


class DialKind(Enum):
    DIGITS = "digits"  # sip:<digits>@<realm>, through the proxy
    URI = "uri"  # the URI itself, through the proxy
    DIRECT = "direct"  # sip:<IPv4>, straight to that address, port 5060, UDP


@dataclass(frozen=True)
class DialTarget:
    kind: DialKind
    user: str | None  # None for a direct call
    host: str | None  # None for digits: the account's realm

    @property
    def needs_registration(self) -> bool:
        """Through the proxy with the account's credentials; a direct call needs neither."""
        return self.kind is not DialKind.DIRECT

    def uri(self, realm: str) -> str:
        """The Request-URI to call; `realm` completes a number of digits."""
        if self.user is None:
            return f"sip:{self.host}"
        return f"sip:{self.user}@{self.host or realm}"


_DIGITS_RE: Final = re.compile(DIGITS_PATTERN)
_DIRECT_RE: Final = re.compile(DIRECT_PATTERN)
_URI_RE: Final = re.compile(URI_PATTERN)
_DTMF_RE: Final = re.compile(DTMF_PATTERN)


def parse_number(text: str) -> DialTarget | None:
    """The `number` of a dial body as a target; None when it is none of the three forms."""
    if _DIGITS_RE.search(text):
        return DialTarget(DialKind.DIGITS, text, None)
    if _DIRECT_RE.search(text):
        return DialTarget(DialKind.DIRECT, None, text.removeprefix("sip:"))
    if _URI_RE.search(text):
        user, _, host = text.removeprefix("sip:").rpartition("@")
        return DialTarget(DialKind.URI, user, host)
    return None


def is_dtmf(text: str) -> bool:
    return _DTMF_RE.search(text) is not None
