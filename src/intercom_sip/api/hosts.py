"""Which Host headers the API answers (contract §1: 421 against DNS rebinding)."""

import ipaddress
from collections.abc import Iterable

_WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 (names, not a bind)


class HostCheck:
    """Loopback names, the address we listen on, and the allowed-hosts option.

    Listening on a wildcard address, any IP literal names us; a DNS name never
    does unless allowed, since a name is what a rebinding attack controls.
    """

    def __init__(self, listen_host: str, allowed: Iterable[str]) -> None:
        self._wildcard = listen_host in _WILDCARDS
        names = {"localhost", "127.0.0.1", "::1", listen_host, *allowed}
        self._names = frozenset(name.lower().strip("[]") for name in names)

    def allows(self, header: bytes | None) -> bool:
        if header is None:
            return False
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
