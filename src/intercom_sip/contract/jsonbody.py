"""Request bodies to JSON objects, with bounded work for any input (contract §3.2 step 1)."""

import json
from collections.abc import Callable
from typing import Any, Final

MAX_DEPTH: Final = 32
MAX_DIGITS: Final = 32


class _LimitBroken(ValueError):
    """A parser limit was broken."""


def parse_object(raw: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is anything else or breaks a limit."""
    try:
        text = raw.decode("utf-8")
        # The C decoder is linear and guards its own recursion (RecursionError, far past
        # our limit), so the depth is checked on what it built: one visit per container.
        # Scanning the text for brackets first would need string-aware matching, which a
        # run of escaped quotes made quadratic.
        start = 0 if text[:1] not in _SPACE else len(text) - len(text.lstrip(_SPACE))
        value, end = _SCAN(text, start)
    except (ValueError, RecursionError, StopIteration):  # StopIteration: no value at all
        return None
    if end != len(text) and text[end:].strip(_SPACE):
        return None  # more after the value
    if type(value) is not dict:
        return None
    # The common case first: too few brackets to nest that deep.
    if text.count("[") + text.count("{") > MAX_DEPTH and _too_deep(value):
        return None
    return value


def _too_deep(value: dict[str, Any]) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        children = node.values() if type(node) is dict else node
        stack.extend((child, depth + 1) for child in children if type(child) in (dict, list))
    return False


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _LimitBroken("duplicate key")
    return result


def _refuse(name: str) -> Any:
    raise _LimitBroken(name)


def _integer(literal: str) -> int:
    if len(literal) > MAX_DIGITS and len(literal) - literal.startswith("-") > MAX_DIGITS:
        raise _LimitBroken("long number")
    return int(literal)


def _finite(literal: str) -> float:
    if sum(char.isdigit() for char in literal) > MAX_DIGITS:
        raise _LimitBroken("long number")
    value = float(literal)
    if value in (float("inf"), float("-inf")):
        raise _LimitBroken("overflow")
    return value


# Made once: json.loads with hooks would build a new decoder for every body.
_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_unique_keys,
    parse_constant=_refuse,
    parse_int=_integer,
    parse_float=_finite,
)
# Its C scanner, called straight: `decode` would match JSON's white space before and
# after the value with two regular expressions (a sixth of the parse of a settings body).
_SCAN: Final[Callable[[str, int], tuple[Any, int]]] = _DECODER.scan_once  # type: ignore[attr-defined]
_SPACE: Final = " \t\n\r"  # JSON's white space (RFC 8259 §2), and no other
