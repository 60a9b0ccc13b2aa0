"""Request bodies to JSON objects, with bounded work for any input (contract §3.2 step 1)."""

import json
import re
from typing import Any, Final

MAX_DEPTH: Final = 32
MAX_DIGITS: Final = 32

_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET_RE = re.compile(r"[\[\]{}]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class _Refused(ValueError):
    """A parser limit was broken."""


def parse_object(raw: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is anything else or breaks a limit."""
    try:
        text = raw.decode("utf-8")
        if _too_deep(text):
            return None
        value = _DECODER.decode(text)
    except (ValueError, RecursionError):
        return None
    return value if type(value) is dict else None


def _too_deep(text: str) -> bool:
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False  # the common case: too few brackets to nest that deep
    depth = 0
    for match in _BRACKET_RE.finditer(_STRING_RE.sub("", text)):
        depth += _STEP[match[0]]
        if depth > MAX_DEPTH:
            return True
    return False


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Refused("duplicate key")
    return result


def _refuse(name: str) -> Any:
    raise _Refused(name)


def _integer(literal: str) -> int:
    if len(literal) - literal.startswith("-") > MAX_DIGITS:
        raise _Refused("long number")
    return int(literal)


def _finite(literal: str) -> float:
    if sum(char.isdigit() for char in literal) > MAX_DIGITS:
        raise _Refused("long number")
    value = float(literal)
    if value in (float("inf"), float("-inf")):
        raise _Refused("overflow")
    return value


# Made once: json.loads with hooks would build a new decoder for every body.
_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_unique_keys,
    parse_constant=_refuse,
    parse_int=_integer,
    parse_float=_finite,
)
