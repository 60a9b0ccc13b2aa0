"""The character and host rules of the contract (§3.3), as compiled patterns.

Each pattern exists twice on purpose: once for Python (`re`) and once as the
ECMA-262 text the OpenAPI document carries, built from the same pieces.
"""

import functools
import re
from typing import Final

# Letters, digits, the space and the vendor's special symbols; nothing that could
# end a SIP header line (CR, LF, tab) and nothing outside ASCII.
SIP_CHARS: Final = '0-9A-Za-z ~`!@#$%^&;*()_\\-+={\\[}\\]|"<,>.?/'

_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
IPV4: Final = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DNS_NAME: Final = rf"{_LABEL}(?:\.{_LABEL})*"
PORT: Final = "[1-9][0-9]{0,4}"
# The DTMF digits, as a class and spelled out: RFC 4733 §3.2's events 0..15, in order.
DTMF_CHARS: Final = "0-9*#A-D"

_IPV4_RE = re.compile(IPV4)
_NAME_RE = re.compile(DNS_NAME)
_DIGITS_AND_DOTS_RE = re.compile("[0-9.]+")
_HOST_PORT_RE = re.compile(rf"([^:]+)(?::({PORT}))?")
_MAX_NAME = 253
_MAX_PORT = 65535


def _spelled(char_class: str) -> str:
    """Every character of a class's inside, ranges spelled out: "0-2#" is "012#"."""

    def spell(run: re.Match[str]) -> str:
        return "".join(chr(code) for code in range(ord(run[1]), ord(run[2]) + 1))

    return re.sub("(.)-(.)", spell, char_class)


DTMF_DIGITS: Final = _spelled(DTMF_CHARS)


def sip_chars(low: int, high: int) -> re.Pattern[str]:
    return re.compile(f"[{SIP_CHARS}]{{{low},{high}}}")


@functools.lru_cache(maxsize=64)  # the same few hosts are posted again and again
def is_host(text: str) -> bool:
    """An IPv4 address in dotted decimal, or an RFC 1123 host name."""
    if _IPV4_RE.fullmatch(text):
        return True
    return (
        len(text) <= _MAX_NAME
        and _NAME_RE.fullmatch(text) is not None
        and _DIGITS_AND_DOTS_RE.fullmatch(text) is None
    )


@functools.lru_cache(maxsize=64)
def parse_proxy(text: str) -> tuple[str, str, int | None] | None:
    """`sips:host:5061` -> ("sips", "host", 5061); None when the text is no proxy.

    The scheme is optional, so `sip:5060` is read both ways: the host `sip` at
    port 5060 is the only reading that is valid.
    """
    for scheme in ("sips", "sip", ""):
        body = text.removeprefix(f"{scheme}:") if scheme else text
        if scheme and body == text:
            continue
        match = _HOST_PORT_RE.fullmatch(body)
        if match is None or not is_host(match[1]):
            continue
        port = int(match[2]) if match[2] else None
        if port is None or port <= _MAX_PORT:
            return scheme or "sip", match[1], port
    return None


def is_proxy(text: str) -> bool:
    """A host with an optional lower-case `sip:`/`sips:` before it and `:port` after it."""
    return parse_proxy(text) is not None
