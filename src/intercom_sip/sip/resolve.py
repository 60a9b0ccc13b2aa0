"""Finding the proxy from its setting as RFC 3263 §4 says: SRV records, else A records.

The one adapter to DNS (dnspython for SRV, the system's resolver for addresses): every
failure of theirs comes back as a `ResolveFailed`, and the whole lookup is bounded in time.
An answer says how long it may be kept (the least TTL of the records it was made from),
so that a binding asks again when a record may have moved (RFC 3263 §4.3 keeps a target
only as long as its records).
"""

import asyncio
import ipaddress
import itertools
import logging
import math
import random
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.resolver
from dns.rdtypes.IN.SRV import SRV

from intercom_sip.sip.syntax import parse_proxy

logger = logging.getLogger(__name__)

DEFAULT_PORTS: Final = {"udp": 5060, "tcp": 5060, "tls": 5061}
SRV_PREFIXES: Final = {"udp": "_sip._udp", "tcp": "_sip._tcp", "tls": "_sips._tcp"}
TIMEOUT_REASON: Final = "DNS timeout"
# getaddrinfo tells no TTL: its answers (/etc/hosts, the system's DNS) are kept this long.
SYSTEM_TTL: Final = 60.0
MAX_TTL: Final = 86400.0
NEVER: Final = math.inf  # an address literal: nothing to look up again

# Some home routers' DNS forwarders drop SRV queries yet answer A queries: the SRV lookup
# gets only a share of the time so that the A fallback still has some.
_SRV_SHARE: Final = 0.5


@dataclass(frozen=True)
class Target:
    """One place to send SIP requests to, in the order they should be tried."""

    host: str  # an IPv4 address
    port: int
    transport: str  # "udp" | "tcp" | "tls"


@dataclass(frozen=True)
class ResolveFailed:
    """No place found; `reason` is short and fit for a log line or the status."""

    reason: str


@dataclass(frozen=True)
class Service:
    """One SRV record (RFC 2782)."""

    priority: int
    weight: int
    port: int
    target: str  # "." when the service is decidedly not available


@dataclass(frozen=True)
class Located:
    """The targets in the order to try them, and for how many seconds they hold."""

    targets: tuple[Target, ...]
    ttl: float


@dataclass(frozen=True)
class Found:
    """The addresses of one name, and their TTL."""

    addresses: list[str]
    ttl: float


Addresses = Found | ResolveFailed
AddressLookup = Callable[[str], Awaitable[Addresses]]
Nameserver = str | tuple[str, int]  # an address (at `port`), or an address and its port


def order_services(services: Sequence[Service], rng: random.Random) -> list[Service]:
    """Lowest priority first; within a priority, RFC 2782's weighted random order."""
    ordered: list[Service] = []
    for priority in sorted({service.priority for service in services}):
        ordered += _weighted([s for s in services if s.priority == priority], rng)
    return ordered


def _weighted(group: list[Service], rng: random.Random) -> list[Service]:
    # RFC 2782 puts the zero weights first, which gives them a small chance to go early.
    remaining = sorted(group, key=lambda service: service.weight != 0)
    ordered = []
    while remaining:
        point = rng.randint(0, sum(service.weight for service in remaining))
        running = itertools.accumulate(service.weight for service in remaining)
        index = next(i for i, total in enumerate(running) if total >= point)
        ordered.append(remaining.pop(index))
    return ordered


def is_localhost(name: str) -> bool:
    """RFC 6761 §6.3: such names are loopback and never asked of a DNS server."""
    name = name.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


class Resolver:
    """Proxy setting -> the ordered places to reach it, bounded by `timeout` seconds.

    `nameservers` None means the system's: /etc/resolv.conf for SRV and getaddrinfo (so
    /etc/hosts too) for addresses. Given nameservers answer both, since getaddrinfo cannot
    be pointed at a server; localhost names are then loopback without a query.
    """

    def __init__(
        self,
        nameservers: Sequence[Nameserver] | None = None,
        port: int = 53,
        timeout: float = 2.0,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._timeout = timeout
        self._rng = rng or random.Random()
        self._dns = _dns_resolver(nameservers, port)
        self._addresses: AddressLookup = (
            _system_addresses if nameservers is None else self._dns_addresses
        )

    async def resolve(self, proxy: str, transport: str) -> list[Target] | ResolveFailed:
        """The targets for `proxy` (`sip:host`, `host:port`, `192.0.2.1`...); never raises."""
        located = await self.locate(proxy, transport)
        return located if isinstance(located, ResolveFailed) else list(located.targets)

    async def locate(self, proxy: str, transport: str) -> Located | ResolveFailed:
        """The targets for `proxy` and how long they hold; never raises."""
        parsed = parse_proxy(proxy)
        if parsed is None:
            return ResolveFailed(f"not a proxy: {proxy!r}")
        if transport not in DEFAULT_PORTS:
            return ResolveFailed(f"unknown transport {transport!r}")
        _, host, port = parsed
        try:
            async with asyncio.timeout(self._timeout):
                return await self._locate(host, port, transport)
        except TimeoutError:
            return ResolveFailed(TIMEOUT_REASON)

    async def _locate(
        self, host: str, port: int | None, transport: str
    ) -> Located | ResolveFailed:
        if _is_ipv4(host):
            return Located((Target(host, port or DEFAULT_PORTS[transport], transport),), NEVER)
        if port is not None:
            return await self._at_port(host, port, transport)
        services, ttl = await self._services(f"{SRV_PREFIXES[transport]}.{host}")
        if not services:
            return await self._at_port(host, DEFAULT_PORTS[transport], transport)
        ordered = order_services(services, self._rng)
        return await self._from_services(host, ordered, ttl, transport)

    async def _at_port(self, name: str, port: int, transport: str) -> Located | ResolveFailed:
        found = await self._addresses(name)
        if isinstance(found, ResolveFailed):
            return found
        targets = tuple(Target(address, port, transport) for address in found.addresses)
        return Located(targets, found.ttl) if targets else ResolveFailed(f"no address for {name}")

    async def _from_services(
        self, host: str, services: list[Service], ttl: float, transport: str
    ) -> Located | ResolveFailed:
        services = [service for service in services if service.target != "."]
        if not services:  # RFC 2782: the service is decidedly not available there
            return ResolveFailed(f"no SIP service at {host}")
        names = list(dict.fromkeys(service.target for service in services))
        found = dict(zip(names, await asyncio.gather(*map(self._addresses, names)), strict=True))
        answered = [f for f in found.values() if isinstance(f, Found)]
        targets = tuple(
            Target(address, service.port, transport)
            for service in services
            if isinstance(addresses := found[service.target], Found)
            for address in addresses.addresses
        )
        if not targets:
            return ResolveFailed(f"no address for the SRV targets of {host}")
        return Located(targets, min([ttl, *(f.ttl for f in answered)]))

    async def _services(self, name: str) -> tuple[list[Service], float]:
        """The SRV records of `name` and their TTL; none when it has none or DNS does not
        tell."""
        if self._dns is None or is_localhost(name):
            return [], MAX_TTL
        try:
            answer = await self._dns.resolve(
                dns.name.from_text(name), "SRV", lifetime=self._timeout * _SRV_SHARE
            )
        except dns.exception.DNSException as error:  # RFC 3263 §4.2: then try A records
            logger.debug("no SRV for %s: %s", name, error)
            return [], MAX_TTL
        services = [
            Service(rr.priority, rr.weight, rr.port, rr.target.to_text(omit_final_dot=True))
            for rr in answer
            if isinstance(rr, SRV)
        ]
        return services, _ttl(answer)

    async def _dns_addresses(self, name: str) -> Addresses:
        if is_localhost(name):
            return Found(["127.0.0.1"], MAX_TTL)
        if self._dns is None:
            return ResolveFailed("no DNS server configured")
        try:
            answer = await self._dns.resolve(dns.name.from_text(name), "A", lifetime=self._timeout)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return ResolveFailed(f"no address for {name}")
        except dns.exception.Timeout:
            return ResolveFailed(TIMEOUT_REASON)
        except dns.exception.DNSException as error:
            return ResolveFailed(f"DNS failure for {name}: {error}")
        return Found([rr.to_text() for rr in answer], _ttl(answer))


def _ttl(answer: dns.resolver.Answer) -> float:
    return float(min(answer.rrset.ttl, MAX_TTL)) if answer.rrset is not None else SYSTEM_TTL


def _dns_resolver(
    nameservers: Sequence[Nameserver] | None, port: int
) -> dns.asyncresolver.Resolver | None:
    """dnspython's resolver; None when the system has no DNS configured at all."""
    try:
        resolver = dns.asyncresolver.Resolver(configure=nameservers is None)
    except dns.exception.DNSException as error:  # e.g. no /etc/resolv.conf
        logger.warning("no DNS configuration, SRV lookups are off: %s", error)
        return None
    if nameservers is not None:
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(*((server, port) if isinstance(server, str) else server))
            for server in nameservers
        ]
    return resolver


async def _system_addresses(name: str) -> Addresses:
    """IPv4 addresses from getaddrinfo, which reads /etc/hosts, in a worker thread."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(name, None, family=socket.AF_INET, type=socket.SOCK_DGRAM)
    except socket.gaierror:
        return ResolveFailed(f"no address for {name}")
    except (OSError, UnicodeError) as error:  # UnicodeError: the IDNA codec's refusal
        return ResolveFailed(f"DNS failure for {name}: {error}")
    return Found(list(dict.fromkeys(str(info[4][0]) for info in infos)), SYSTEM_TTL)
