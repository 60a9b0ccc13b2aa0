"""RTP ports: the range option, even ports (and RTCP's above) leased at random, refused when
exhausted."""

import random
import socket
from collections.abc import Iterator

import pytest

from intercom_sip.media.ports import (
    BAD_RANGE,
    EXHAUSTED,
    NO_EVEN_PORT,
    NOT_AN_ADDRESS,
    PortError,
    PortPool,
    PortRange,
    RtpPort,
    parse_range,
)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("10000-20000", PortRange(10000, 20000)),
        (" 40001-40002 ", PortRange(40001, 40002)),
        ("40000-40000", PortRange(40000, 40000)),
        ("1024-65534", PortRange(1024, 65534)),
        ("40001-40001", PortError(NO_EVEN_PORT)),
        ("20000-10000", PortError(BAD_RANGE)),
        ("80-100", PortError(BAD_RANGE)),
        ("60000-65535", PortError(BAD_RANGE)),
        ("10000", PortError(BAD_RANGE)),
        ("10000-", PortError(BAD_RANGE)),
        ("a-b", PortError(BAD_RANGE)),
        ("", PortError(BAD_RANGE)),
    ],
)
def test_the_range_option(text: str, parsed: PortRange | PortError) -> None:
    assert parse_range(text) == parsed


def test_only_even_ports() -> None:
    assert list(PortRange(40001, 40007).even) == [40002, 40004, 40006]


def free_range(size: int) -> PortRange:
    """A run of ports nobody holds on 127.0.0.1 now (checked by binding them)."""
    for first in range(41000, 60000, 100):
        socks = []
        try:
            for port in range(first, first + size):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return PortRange(first, first + size - 1)
    raise AssertionError("no free port range")


@pytest.fixture
def leases() -> Iterator[list[RtpPort]]:
    taken: list[RtpPort] = []
    yield taken
    for lease in taken:
        lease.release()


def take(pool: PortPool, leases: list[RtpPort]) -> RtpPort:
    lease = pool.take("127.0.0.1")
    assert isinstance(lease, RtpPort), lease
    leases.append(lease)
    return lease


def test_ports_are_leased_until_none_is_left(leases: list[RtpPort]) -> None:
    ports = free_range(6)
    pool = PortPool(ports)
    assert sorted(take(pool, leases).port for _ in range(3)) == list(ports.even)
    assert pool.take("127.0.0.1") == PortError(EXHAUSTED)
    assert pool.leased == 3
    leases[1].release()
    leases[1].release()  # idempotent
    assert pool.leased == 2
    assert take(pool, leases).port == leases[1].port
    assert pool.take("127.0.0.1") == PortError(EXHAUSTED)


def test_ports_are_picked_at_random_among_the_free_ones(leases: list[RtpPort]) -> None:
    """Not in order (CONTRACT §6.7): a stranger cannot guess the next call's port. 20
    ports in order by chance: 1 in 20! (the old pool gave them in order)."""
    ports = free_range(40)
    pool = PortPool(ports)
    taken = [take(pool, leases).port for _ in range(20)]
    assert sorted(taken) == list(ports.even)
    assert taken != list(ports.even)
    for lease in leases:
        lease.release()
    leases.clear()
    again = [take(pool, leases).port for _ in range(20)]
    assert again != taken  # each call a new draw, not one fixed shuffle


def test_the_pool_draws_from_the_rng_it_is_given(leases: list[RtpPort]) -> None:
    ports = free_range(40)
    drawn = []
    for _ in range(2):
        pool = PortPool(ports, random.Random(7))
        drawn.append([take(pool, leases).port for _ in range(5)])
        for lease in leases:
            lease.release()
        leases.clear()
    assert drawn[0] == drawn[1]


def test_the_rtcp_port_above_is_bound_too(leases: list[RtpPort]) -> None:
    ports = free_range(2)
    lease = take(PortPool(ports), leases)
    rtcp = lease.detach_rtcp()
    assert rtcp is not None
    with rtcp:
        assert rtcp.getsockname() == ("127.0.0.1", ports.first + 1)
    assert lease.detach_rtcp() is None


def test_an_even_port_whose_rtcp_port_is_held_is_skipped(leases: list[RtpPort]) -> None:
    ports = free_range(4)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind(("127.0.0.1", ports.even[0] + 1))
        pool = PortPool(ports)
        assert take(pool, leases).port == ports.even[1]
        assert pool.take("127.0.0.1") == PortError(EXHAUSTED)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", ports.even[0]))  # the RTP half was let go


def test_a_port_someone_else_holds_is_skipped(leases: list[RtpPort]) -> None:
    ports = free_range(4)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind(("127.0.0.1", ports.even[0]))
        pool = PortPool(ports)
        assert take(pool, leases).port == ports.even[1]
        assert pool.take("127.0.0.1") == PortError(EXHAUSTED)
    assert take(pool, leases).port == ports.even[0]


def test_the_lease_holds_a_bound_socket_and_release_closes_it(leases: list[RtpPort]) -> None:
    ports = free_range(2)
    lease = take(PortPool(ports), leases)
    sock = lease.detach()
    assert sock.getsockname() == ("127.0.0.1", ports.first)
    with pytest.raises(ValueError, match=r"^the RTP socket is already detached or released$"):
        lease.detach()
    sock.close()
    lease.release()  # and its RTCP socket
    kept = take(PortPool(ports), leases)
    kept.release()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", ports.first))  # the port is free again


def test_ipv6(leases: list[RtpPort]) -> None:
    lease = take_v6(PortPool(free_range(2)), leases)
    with lease.detach() as sock:
        assert sock.family == socket.AF_INET6


def take_v6(pool: PortPool, leases: list[RtpPort]) -> RtpPort:
    lease = pool.take("::1")
    if isinstance(lease, PortError) and "cannot bind" in lease.message:
        pytest.skip("no IPv6 loopback here")
    assert isinstance(lease, RtpPort), lease
    leases.append(lease)
    return lease


@pytest.mark.parametrize(
    ("host", "error"),
    [
        ("localhost", NOT_AN_ADDRESS),
        ("", NOT_AN_ADDRESS),
        ("192.0.2.1", "cannot bind RTP on 192.0.2.1: Cannot assign requested address"),
    ],
)
def test_a_wrong_host_is_refused_at_once(host: str, error: str) -> None:
    pool = PortPool(PortRange(41000, 60000))
    assert pool.take(host) == PortError(error)
    assert pool.leased == 0
