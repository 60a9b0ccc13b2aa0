"""Findings 10 and 11: the proxy found by SRV, its targets tried in order (RFC 3263
§4.3), and looked up again when the answer's TTL runs out or after a failure. The
service asks our DNS server (`--dns-server`); Kamailio's location table is the truth."""

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.dns import DnsServer, Srv, dns_server
from tests.peers.kamailio import Kamailio, MakeKamailio
from tests.peers.ports import free_port
from tests.peers.test_agent import Device, registered
from tests.served import wait_for

pytestmark = pytest.mark.peers
DOMAIN = "pbx.test"
PREFIX = {"udp": "_sip._udp", "tcp": "_sip._tcp"}


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with dns_server() as server:
        server.set_a(f"a.{DOMAIN}", ["127.0.0.1"])
        yield server


def serve(dns: DnsServer, transport: str, *ports: int, ttl: int = 300) -> None:
    """SRV records for DOMAIN: the given ports at priorities 10, 20, ..."""
    records = [Srv(10 * (i + 1), 0, port, f"a.{DOMAIN}") for i, port in enumerate(ports)]
    dns.set_srv(f"{PREFIX[transport]}.{DOMAIN}", records, ttl)


def start(tmp_path: Path, kamailio: Kamailio, dns: DnsServer, *extra: str) -> Device:
    device = Device(tmp_path / "data", kamailio.ca_cert)
    device.extra = ("--dns-server", dns.address, *extra)
    return device.start()


def body(transport: str, **changes: Any) -> dict[str, Any]:
    return {
        "enable": True,
        "proxy": DOMAIN,
        "realm": "kamailio.test",
        "user": "101",
        "password": "secret",
        "transport": transport,
        "user_id": "",
        "timeout": 120,
        "registration_interval": 30,
        "stun": {"ip": "", "port": 0},
        **changes,
    }


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_dead_first_target_gives_way_to_the_second(
    tmp_path: Path, kamailio: Kamailio, dns: DnsServer, transport: str
) -> None:
    # Nothing listens at the priority-10 port: ICMP port unreachable (UDP) or a refused
    # connection (TCP). T1 of 2 s puts Timer F at 128 s: only the error can be the cause.
    serve(dns, transport, free_port(both=True), kamailio.sip_port)
    device = start(tmp_path, kamailio, dns, "--sip-t1", "2")
    try:
        device.post(body(transport))
        device.wait_status(registered, timeout=30)
        found = kamailio.bindings("101")
    finally:
        device.stop()
    assert [binding.transport.lower() for binding in found] == [transport]


def test_a_silent_first_target_gives_way_after_timer_f(
    tmp_path: Path, kamailio: Kamailio, dns: DnsServer
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        serve(dns, "udp", silent.getsockname()[1], kamailio.sip_port)
        device = start(tmp_path, kamailio, dns, "--sip-t1", "0.05")  # Timer F: 3.2 s
        try:
            device.post(body("udp"))
            device.wait_status(registered, timeout=40)
            heard = silent.recv(4096, socket.MSG_DONTWAIT)
            found = kamailio.bindings("101")
        finally:
            device.stop()
    assert heard.startswith(b"REGISTER sip:kamailio.test SIP/2.0\r\n")
    assert len(found) == 1


@pytest.fixture
def two(kamailio_factory: MakeKamailio) -> tuple[Kamailio, Kamailio]:
    """Two registrars granting 4 s, so that the refresh comes within 2 s."""
    return (
        kamailio_factory(min_expires=2, max_expires=4),
        kamailio_factory(min_expires=2, max_expires=4),
    )


def test_a_moved_record_is_followed_once_its_ttl_runs_out(
    tmp_path: Path, two: tuple[Kamailio, Kamailio], dns: DnsServer
) -> None:
    first, second = two
    serve(dns, "udp", first.sip_port, ttl=1)
    device = start(tmp_path, first, dns)
    try:
        device.post(body("udp"))
        device.wait_status(registered)
        wait_for(lambda: len(first.bindings("101")) == 1)
        serve(dns, "udp", second.sip_port, ttl=1)
        wait_for(lambda: len(second.bindings("101")) == 1, timeout=30)
        still = device.status()
    finally:
        device.stop()
    assert registered(still)
    assert dns.asked(f"_sip._udp.{DOMAIN}", "SRV") >= 2


def test_after_a_failure_the_name_is_looked_up_again(
    tmp_path: Path, two: tuple[Kamailio, Kamailio], dns: DnsServer
) -> None:
    first, second = two
    serve(dns, "udp", first.sip_port, ttl=3600)  # the TTL alone would keep `first`
    device = start(tmp_path, first, dns)
    try:
        device.post(body("udp"))
        device.wait_status(registered)
        asked = dns.asked(f"_sip._udp.{DOMAIN}", "SRV")
        first.stop()
        serve(dns, "udp", second.sip_port, ttl=3600)
        wait_for(lambda: len(second.bindings("101")) == 1, timeout=30)
        status = device.wait_status(registered)
    finally:
        device.stop()
    assert dns.asked(f"_sip._udp.{DOMAIN}", "SRV") > asked
    assert status["code"] == 200
