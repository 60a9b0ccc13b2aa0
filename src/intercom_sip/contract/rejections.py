"""A settings body's bytes and the stored settings -> the new settings or the rejection,
with the rejections of the last few bodies kept: a client that sends a rejected body again
(a script retrying, an integration polling with a stale body) is answered at once.

Pure: the parse and the rules take values and give values, so the same bytes under the
same rules against the same stored settings are always rejected with the same `Invalid`;
a rejection is reused only while the stored settings it was made against are the very
object given (any accepted change replaces that object, and so forgets them all).
"""

from collections.abc import Callable, Mapping
from typing import Any, Final

from intercom_sip import errors
from intercom_sip.contract import jsonbody
from intercom_sip.contract.settings import Settings
from intercom_sip.contract.validation import Invalid

MAX_KEPT: Final = 64  # rejected bodies remembered ...
MAX_BODY: Final = 4096  # ... each of at most this many bytes (a settings body is ~300)
NOT_JSON: Final = Invalid(errors.WRONG_JSON_BODY)

# A body and the last accepted settings -> the new settings, or why not.
Rules = Callable[[Mapping[str, Any], Settings], Settings | Invalid]


def judge(raw: bytes, rules: Rules, stored: Settings) -> Settings | Invalid:
    """The body parsed (§3.2 step 1), then checked by `rules` against `stored`."""
    body = jsonbody.parse_object(raw)
    return NOT_JSON if body is None else rules(body, stored)


class Rejections:
    """`judge`, remembering the last MAX_KEPT rejections by the body's bytes and rules."""

    def __init__(self, kept: int = MAX_KEPT, max_body: int = MAX_BODY) -> None:
        self._kept, self._max_body = kept, max_body
        self._stored: Settings | None = None  # what the rejections were made against
        self._rejected: dict[tuple[Rules, bytes], Invalid] = {}  # oldest first

    def judge(self, raw: bytes, rules: Rules, stored: Settings) -> Settings | Invalid:
        if stored is not self._stored:
            self._rejected.clear()
            self._stored = stored
        key = (rules, raw)
        known = self._rejected.get(key)
        if known is not None:
            return known
        result = judge(raw, rules, stored)
        if isinstance(result, Invalid) and len(raw) <= self._max_body:
            if len(self._rejected) >= self._kept:
                del self._rejected[next(iter(self._rejected))]
            self._rejected[key] = result
        return result

    def __len__(self) -> int:
        return len(self._rejected)

    def __repr__(self) -> str:  # never the bodies: one may hold a password
        return f"<Rejections: {len(self._rejected)} kept>"
