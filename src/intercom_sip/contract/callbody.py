"""The bodies and the query of the call routes (contract §6), read as the settings body
is (§3.2): a parsed JSON object in, the value or the contract's error out. Pure."""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs

from intercom_sip import errors
from intercom_sip.calls import LOG_KEEP
from intercom_sip.contract.dialing import (
    DTMF_MAX,
    DTMF_PATTERN,
    DTMF_TEXT,
    DialTarget,
    is_dtmf,
    parse_number,
)
from intercom_sip.contract.fields import Context, Field, Kind
from intercom_sip.contract.validation import Invalid, value_of

LIMIT_DEFAULT: Final = 50
_LIMIT_RE: Final = re.compile("[1-9][0-9]{0,3}")
_MAX_QUERY_FIELDS: Final = 16


@dataclass(frozen=True)
class DtmfDigits:
    def reason(self, value: Any, ctx: Context) -> str | None:
        return None if is_dtmf(value) else DTMF_TEXT

    def schema(self) -> dict[str, Any]:
        return {"minLength": 1, "maxLength": DTMF_MAX, "pattern": DTMF_PATTERN}


# The number's format is checked apart: the vendor answers it with its own text.
NUMBER: Final = Field(
    "number", Kind.STRING, True, None, None, None, "Digits, sip:user@host, or sip:<IPv4>"
)
DIGITS: Final = Field("digits", Kind.STRING, True, None, None, DtmfDigits(), "DTMF digits to send")
AUTO_ANSWER: Final = Field(
    "is_enabled", Kind.BOOLEAN, True, None, False, None, "Answer incoming calls by themselves"
)


def read_dial(body: Mapping[str, Any]) -> DialTarget | Invalid:
    number = value_of(body, NUMBER)
    if isinstance(number, Invalid):
        return number
    target = parse_number(number)
    return Invalid(errors.WRONG_NUMBER_FORMAT) if target is None else target


def read_dtmf(body: Mapping[str, Any]) -> str | Invalid:
    digits: str | Invalid = value_of(body, DIGITS)
    return digits


def read_auto_answer(body: Mapping[str, Any]) -> bool | Invalid:
    enabled: bool | Invalid = value_of(body, AUTO_ANSWER)
    return enabled


def read_limit(query: bytes) -> int | None:
    """`limit` of the call log's query: 1..LOG_KEEP, LIMIT_DEFAULT when absent; None for
    anything else (two of them, a sign, a leading zero, a fraction, a space)."""
    try:
        params = parse_qs(
            query.decode("latin-1"), keep_blank_values=True, max_num_fields=_MAX_QUERY_FIELDS
        )
    except ValueError:
        return None
    values = params.get("limit")
    if values is None:
        return LIMIT_DEFAULT
    if len(values) != 1 or not _LIMIT_RE.fullmatch(values[0]):
        return None
    limit = int(values[0])
    return limit if limit <= LOG_KEEP else None
