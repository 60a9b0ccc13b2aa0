"""The resolver against a fake DNS server on 127.0.0.1, and its pure SRV ordering."""

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, cast

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from intercom_sip.sip.resolve import (
    ResolveFailed,
    Resolver,
    Service,
    Target,
    order_services,
)

Records = dict[tuple[str, str], list[str]]  # (absolute name, type) -> rdata texts

EXAMPLE: Records = {
    ("_sip._udp.example.test.", "SRV"): [
        "20 0 5070 c.example.test.",
        "10 30 5060 a.example.test.",
        "10 70 5062 b.example.test.",
    ],
    ("_sip._tcp.example.test.", "SRV"): ["10 0 5080 a.example.test."],
    ("_sips._tcp.example.test.", "SRV"): ["10 0 5081 b.example.test."],
    ("a.example.test.", "A"): ["192.0.2.1", "192.0.2.2"],
    ("b.example.test.", "A"): ["192.0.2.3"],
    ("c.example.test.", "A"): ["192.0.2.4"],
    ("example.test.", "A"): ["192.0.2.9"],
    ("plain.test.", "A"): ["198.51.100.7"],
    ("_sip._udp.notxt.test.", "TXT"): ['"no SRV here"'],
    ("notxt.test.", "A"): ["198.51.100.8"],
    ("_sip._udp.dead.test.", "SRV"): ["10 0 5060 gone.test."],
    ("_sip._udp.closed.test.", "SRV"): ["0 0 0 ."],
}


class FakeDns(asyncio.DatagramProtocol):
    """Answers from `records`; NXDOMAIN for unknown names; never answers `silent` types."""

    def __init__(self, records: Records, silent: Iterable[str]) -> None:
        self.records = records
        self.silent = frozenset(silent)
        self.queries: list[tuple[str, str]] = []
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's own UDP transport does not subclass DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        key = (question.name.to_text(), dns.rdatatype.to_text(question.rdtype))
        self.queries.append(key)
        if key[1] not in self.silent and self._transport is not None:
            # Unshuffled, so that the tests can see the resolver keep the server's order.
            wire = self._answer(query, key).to_wire(want_shuffle=False)
            self._transport.sendto(wire, addr)

    def _answer(self, query: dns.message.Message, key: tuple[str, str]) -> dns.message.Message:
        response = dns.message.make_response(query)
        if key in self.records:
            rrset = dns.rrset.from_text(key[0], 300, "IN", key[1], *self.records[key])
            response.answer.append(rrset)
        elif all(name != key[0] for name, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response  # else NOERROR with no answer: the name has other types


@contextlib.asynccontextmanager
async def fake_dns(
    records: Records = EXAMPLE, silent: Iterable[str] = (), limit: float = 2.0, seed: int = 7
) -> AsyncIterator[tuple[FakeDns, Resolver]]:
    loop = asyncio.get_running_loop()
    server = FakeDns(records, silent)
    transport, _ = await loop.create_datagram_endpoint(lambda: server, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        yield server, Resolver(["127.0.0.1"], port, limit, rng=random.Random(seed))
    finally:
        transport.close()


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        return await scenario()

    return asyncio.run(main())


def resolve_with_fake(
    proxy: str, transport: str, **options: Any
) -> tuple[list[Target] | ResolveFailed, list[tuple[str, str]]]:
    """The answer for `proxy`, and the queries the fake server saw."""

    async def scenario() -> tuple[list[Target] | ResolveFailed, list[tuple[str, str]]]:
        async with fake_dns(**options) as (server, resolver):
            return await resolver.resolve(proxy, transport), server.queries

    result: tuple[list[Target] | ResolveFailed, list[tuple[str, str]]] = run(scenario)
    return result


@pytest.mark.parametrize(
    ("proxy", "transport", "port"),
    [
        ("192.0.2.1", "udp", 5060),
        ("sip:192.0.2.1", "tcp", 5060),
        ("sips:192.0.2.1", "tls", 5061),
        ("192.0.2.1", "tls", 5061),
        ("192.0.2.1:5080", "udp", 5080),
        ("sip:192.0.2.1:5080", "tcp", 5080),
        ("sips:192.0.2.1:5080", "tls", 5080),
    ],
)
def test_an_ipv4_literal_needs_no_dns(proxy: str, transport: str, port: int) -> None:
    assert resolve_with_fake(proxy, transport) == ([Target("192.0.2.1", port, transport)], [])


def test_a_name_with_a_port_is_looked_up_for_a_records_only() -> None:
    assert resolve_with_fake("sip:a.example.test:5080", "udp") == (
        [Target("192.0.2.1", 5080, "udp"), Target("192.0.2.2", 5080, "udp")],
        [("a.example.test.", "A")],
    )


@pytest.mark.parametrize(
    ("seed", "expected"),
    [
        # b (weight 70) drawn before a (weight 30); c (priority 20) always last.
        (7, [("192.0.2.3", 5062), ("192.0.2.1", 5060), ("192.0.2.2", 5060), ("192.0.2.4", 5070)]),
        (1, [("192.0.2.1", 5060), ("192.0.2.2", 5060), ("192.0.2.3", 5062), ("192.0.2.4", 5070)]),
    ],
)
def test_srv_records_go_by_priority_then_weight(
    seed: int, expected: list[tuple[str, int]]
) -> None:
    targets, queries = resolve_with_fake("example.test", "udp", seed=seed)
    assert (targets, sorted(queries)) == (
        [Target(host, port, "udp") for host, port in expected],
        [
            ("_sip._udp.example.test.", "SRV"),
            ("a.example.test.", "A"),
            ("b.example.test.", "A"),
            ("c.example.test.", "A"),
        ],
    )


@pytest.mark.parametrize(
    ("transport", "expected"),
    [
        ("tcp", [Target("192.0.2.1", 5080, "tcp"), Target("192.0.2.2", 5080, "tcp")]),
        ("tls", [Target("192.0.2.3", 5081, "tls")]),
    ],
)
def test_the_srv_name_follows_the_transport(transport: str, expected: list[Target]) -> None:
    assert resolve_with_fake("sip:example.test", transport)[0] == expected


@pytest.mark.parametrize(("transport", "port"), [("udp", 5060), ("tcp", 5060), ("tls", 5061)])
def test_without_srv_records_the_a_records_serve_at_the_default_port(
    transport: str, port: int
) -> None:
    prefix = {"udp": "_sip._udp", "tcp": "_sip._tcp", "tls": "_sips._tcp"}[transport]
    assert resolve_with_fake("plain.test", transport) == (
        [Target("198.51.100.7", port, transport)],
        [(f"{prefix}.plain.test.", "SRV"), ("plain.test.", "A")],
    )


def test_a_name_with_other_records_but_no_srv_falls_back_to_a() -> None:
    assert resolve_with_fake("notxt.test", "udp")[0] == [Target("198.51.100.8", 5060, "udp")]


def test_a_server_that_drops_srv_queries_leaves_time_for_a() -> None:
    started = time.monotonic()
    # SRV gets half the limit, then A the rest: 1 s each, room for a loaded machine's
    # late fake server; and well within dnspython's own 5 s, which a missing limit takes.
    result = resolve_with_fake("plain.test", "tcp", silent={"SRV"}, limit=2.0)
    assert (result[0], time.monotonic() - started < 3.5) == (
        [Target("198.51.100.7", 5060, "tcp")],
        True,
    )


@pytest.mark.parametrize(
    ("proxy", "transport", "expected"),
    [
        ("localhost", "udp", [Target("127.0.0.1", 5060, "udp")]),
        ("sips:localhost", "tls", [Target("127.0.0.1", 5061, "tls")]),
        ("localhost:5080", "tcp", [Target("127.0.0.1", 5080, "tcp")]),
    ],
)
def test_localhost_is_loopback_without_a_query(
    proxy: str, transport: str, expected: list[Target]
) -> None:
    assert resolve_with_fake(proxy, transport) == (expected, [])


@pytest.mark.parametrize(
    ("proxy", "transport", "expected"),
    [
        ("localhost", "udp", [Target("127.0.0.1", 5060, "udp")]),
        ("sips:localhost", "tls", [Target("127.0.0.1", 5061, "tls")]),
        ("localhost:5080", "tcp", [Target("127.0.0.1", 5080, "tcp")]),
    ],
)
def test_the_system_resolver_reads_etc_hosts(
    proxy: str, transport: str, expected: list[Target]
) -> None:
    async def scenario() -> list[Target] | ResolveFailed:
        return await Resolver(timeout=1.0).resolve(proxy, transport)

    assert run(scenario) == expected


@pytest.mark.parametrize(
    ("proxy", "reason"),
    [
        ("nowhere.test", "no address for nowhere.test"),
        ("nowhere.test:5060", "no address for nowhere.test"),
        ("dead.test", "no address for the SRV targets of dead.test"),
        ("closed.test", "no SIP service at closed.test"),
        ("sip:", "not a proxy: 'sip:'"),
        ("pbx..test", "not a proxy: 'pbx..test'"),
    ],
)
def test_a_name_without_an_address_fails(proxy: str, reason: str) -> None:
    assert resolve_with_fake(proxy, "udp")[0] == ResolveFailed(reason)


def test_an_unknown_transport_fails() -> None:
    assert resolve_with_fake("192.0.2.1", "sctp")[0] == ResolveFailed("unknown transport 'sctp'")


@pytest.mark.parametrize("proxy", ["example.test", "example.test:5060"])
def test_a_server_that_never_answers_fails_within_the_timeout(proxy: str) -> None:
    started = time.monotonic()
    result = resolve_with_fake(proxy, "udp", silent={"SRV", "A"}, limit=1.0)
    # Given up at the limit (1 s), not at dnspython's own 5 s; the rest is a loaded machine.
    assert (result[0], time.monotonic() - started < 3.0) == (ResolveFailed("DNS timeout"), True)


class ScriptedRandom(random.Random):
    """Returns the given draws from `randint`, so the RFC 2782 selection can be followed."""

    def __init__(self, draws: list[int]) -> None:
        super().__init__()
        self.draws = draws
        self.bounds: list[tuple[int, int]] = []

    def randint(self, a: int, b: int) -> int:
        self.bounds.append((a, b))
        return self.draws.pop(0)


def test_weighted_order_follows_rfc_2782_running_sums() -> None:
    a, b, c = Service(1, 10, 1, "a"), Service(1, 0, 2, "b"), Service(1, 30, 3, "c")
    rng = ScriptedRandom([11, 0, 0])
    # Zero weights first: running sums b 0, a 10, c 40; 11 picks c. Then b 0, a 10: 0
    # picks b. Then a alone.
    assert (order_services([a, b, c], rng), rng.bounds) == ([c, b, a], [(0, 40), (0, 10), (0, 10)])


def test_priority_comes_before_weight() -> None:
    low, high = Service(5, 0, 1, "low"), Service(1, 0, 2, "high")
    heavy_low = Service(5, 1000, 3, "heavy")
    assert order_services([low, heavy_low, high], ScriptedRandom([0, 0, 0])) == [
        high,
        low,
        heavy_low,
    ]


def test_weights_share_out_the_first_place() -> None:
    light, heavy = Service(1, 10, 1, "light"), Service(1, 90, 2, "heavy")
    rng = random.Random(1)
    firsts = [order_services([light, heavy], rng)[0] for _ in range(2000)].count(heavy)
    assert 1700 < firsts < 1900
