"""Who may ring, and what a stranger costs (CONTRACT §6.9); pure.

A UDP source address is a claim anyone can forge, so a call from the proxy is known by
what only the proxy has: the registered Contact's user part carries a token made at each
start (`<user>-<token>`), and a registrar delivers to that Contact. A connection cannot
be forged that way: over TCP/TLS the registration's own flow, or a connection from one
of the proxy's resolved addresses, is the proxy. Within a dialog, requests come from the
proxy or from the dialog's remote target. Everyone else is a stranger: one stateless
answer (RFC 3261 §26.3.2.4), from a per-source budget, and no transaction, no call-log
row. Direct calls (an installer's choice) take any INVITE to one of our addresses.

`judge` is the decision, from a `Trust` value the shell refreshes before each message;
`Budget` is the per-source answer budget, under a clock passed in.
"""

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import Enum
from typing import Final
from urllib.parse import unquote

from intercom_sip.sip.message import Request, parse_name_addr

ANSWERS_PER_SECOND: Final = 10  # a stranger's answers per source address each second
MAX_SOURCES: Final = 1024  # sources the budget remembers at once
TOKEN_BYTES: Final = 12  # 96 bits from the CSPRNG (§6.9: at least 64)


class Verdict(Enum):
    PROXY = "proxy"  # the proxy's (or carries the token): may ring, always has room
    PEER = "peer"  # within a dialog, from its remote target
    DIRECT = "direct"  # a direct call to one of our addresses (--direct-calls)
    STRANGER = "stranger"  # one stateless 403, from the budget


@dataclass(frozen=True)
class Trust:
    """What the decision needs to know, refreshed by the shell before each message.

    `token`: the registered Contact's token ("" before any); `proxies`: the proxy's
    resolved addresses; `registration`: the key of the registration's flow (TCP/TLS);
    `peers`: the live dialogs' remote targets (hosts); `ours`: our addresses, for direct
    calls when `direct` is on; `direct_to`: the core's user that takes direct calls."""

    token: str = field(default="", repr=False)
    proxies: frozenset[str] = frozenset()
    registration: Hashable | None = None
    peers: frozenset[str] = frozenset()
    ours: frozenset[str] = frozenset()
    direct: bool = False
    direct_to: str = ""


def judge(trust: Trust, request: Request, source: str, reliable: bool, key: Hashable) -> Verdict:
    """The verdict on a request that opens no existing transaction, from `source` (an IP
    address) on the flow `key` (reliable: TCP/TLS)."""
    if _in_dialog(request):
        known = source in trust.proxies or source in trust.peers
        return (
            Verdict.PEER if known or _on_registration(trust, reliable, key) else Verdict.STRANGER
        )
    if reliable:
        proxy = _on_registration(trust, reliable, key) or source in trust.proxies
    else:
        proxy = has_token(request.uri, trust.token) or (
            request.method != "INVITE" and source in trust.proxies
        )
    if proxy:
        return Verdict.PROXY
    if trust.direct and uri_host(request.uri) in trust.ours:
        return Verdict.DIRECT
    return Verdict.STRANGER


def has_token(uri: str, token: str) -> bool:
    """The Request-URI's user part ends in `-<token>` (a registrar delivering to us)."""
    return bool(token) and user_of(uri).endswith(f"-{token}")


def without_token(user: str, token: str) -> str:
    """`<user>-<token>` -> `<user>`; any other user part as it is."""
    suffix = f"-{token}"
    return user[: -len(suffix)] if token and user.endswith(suffix) else user


def user_of(uri: str) -> str:
    """The user part of a sip: or sips: URI, unescaped (§19.1.2); "" when it has none."""
    scheme, colon, rest = uri.partition(":")
    if not colon or scheme.lower() not in ("sip", "sips"):
        return ""
    userinfo, at, _ = rest.rpartition("@")
    return unquote(userinfo.partition(":")[0]) if at else ""


def uri_host(uri: str) -> str:
    """The host of a sip: or sips: URI, brackets removed, lower case; "" when none."""
    scheme, colon, rest = uri.partition(":")
    if not colon or scheme.lower() not in ("sip", "sips"):
        return ""
    hostport = rest.rpartition("@")[2].partition(";")[0].partition("?")[0]
    if hostport.startswith("["):
        return hostport[1:].partition("]")[0].lower()
    return hostport.partition(":")[0].lower()


def _in_dialog(request: Request) -> bool:
    to = parse_name_addr(request.headers.get("To") or "")
    return bool(to and to.params.get("tag"))


def _on_registration(trust: Trust, reliable: bool, key: Hashable) -> bool:
    return reliable and trust.registration is not None and key == trust.registration


@dataclass
class Rate:
    """At most `per_second` events in any one second (a sliding window: the instants
    of the last `per_second` admitted are kept), and how many were turned away since
    the last one admitted."""

    per_second: int
    _recent: deque[float] = field(default_factory=deque)
    left_out: int = 0

    def admit(self, now: float) -> bool:
        recent = self._recent
        if len(recent) >= self.per_second and now - recent[0] < 1.0:
            self.left_out += 1
            return False
        recent.append(now)
        if len(recent) > self.per_second:
            recent.popleft()
        return True

    def idle(self, now: float) -> bool:
        """Nothing admitted for a second: forgetting this one loses nothing."""
        return not self._recent or now - self._recent[-1] >= 1.0


@dataclass
class Budget:
    """At most `per_second` answers in any second to each source; at most `max_sources`
    sources remembered, so that a spray of forged addresses cannot grow the table:
    when it is full, the idle ones are forgotten (a sweep a second at most), and a new
    source that still finds it full gets nothing."""

    per_second: int = ANSWERS_PER_SECOND
    max_sources: int = MAX_SOURCES
    _rates: dict[str, Rate] = field(default_factory=dict)
    _swept: float = float("-inf")

    def admit(self, source: str, now: float) -> bool:
        rate = self._rates.get(source)
        if rate is None:
            if len(self._rates) >= self.max_sources and not self._sweep(now):
                return False
            rate = self._rates[source] = Rate(self.per_second)
        return rate.admit(now)

    def __len__(self) -> int:
        return len(self._rates)

    def _sweep(self, now: float) -> bool:
        """Forget the idle sources; True when there is room again."""
        if now - self._swept >= 1.0:
            self._swept = now
            for source in [s for s, rate in self._rates.items() if rate.idle(now)]:
                del self._rates[source]
        return len(self._rates) < self.max_sources
