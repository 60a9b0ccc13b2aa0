"""Which Host headers the API answers (contract §1: 421 against DNS rebinding)."""

import ipaddress
from collections.abc import Iterable
from typing import Final

_WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 (names, not a bind)
MAX_SEEN: Final = 64  # Host headers whose verdict is kept (a client may send any) ...
MAX_KEPT_HEADER: Final = 262  # ... each at most a name's 253 bytes, brackets and a port


class HostCheck:
    """Loopback names, the address we listen on, and the allowed-hosts option.

    Listening on a wildcard address, any IP literal names us; a DNS name never
    does unless allowed, since a name is what a rebinding attack controls.
    """

    def __init__(self, listen_host: str, allowed: Iterable[str]) -> None:
        self._wildcard = listen_host in _WILDCARDS
        names = {"localhost", "127.0.0.1", "::1", listen_host, *allowed}
        self._names = frozenset(name.lower().strip("[]") for name in names)
        # The verdicts on the headers seen last: clients send the same few again and again.
        self._seen: dict[bytes, bool] = {}

    def allows(self, header: bytes | None) -> bool:
        if header is None:
            return False
        verdict = self._seen.get(header)
        if verdict is None:
            verdict = self._judge(header)
            if len(header) <= MAX_KEPT_HEADER:
                if len(self._seen) >= MAX_SEEN:
                    self._seen.clear()
                self._seen[header] = verdict
        return verdict

    def __len__(self) -> int:
        return len(self._seen)

    def _judge(self, header: bytes) -> bool:
        host = _strip_port(header.decode("latin-1").lower())
        if host is None:
            return False
        if host in self._names:
            return True
        return self._wildcard and _is_ip(host)


def _strip_port(value: str) -> str | None:
    """The name without its port; None when the port is no port (1 to 5 digits)."""
    if value.startswith("[") and "]" in value:
        end = value.find("]")
        name, rest = value[1:end], value[end + 1 :]
        if not rest:
            return name
        if not rest.startswith(":"):
            return None
        port = rest[1:]
    elif value.count(":") == 1:
        name, _, port = value.partition(":")
    else:
        return value
    return name if _is_port(port) else None


def _is_port(text: str) -> bool:
    return 1 <= len(text) <= 5 and text.isascii() and text.isdigit()


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
