"""The SIP agent against a real Kamailio: its `ul.dump` is the ground truth."""

import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.kamailio import Kamailio, MakeKamailio
from tests.peers.ports import free_port
from tests.peers.relay import UdpRelay
from tests.served import Served, wait_for

pytestmark = pytest.mark.peers
TRANSPORTS = ["udp", "tcp", "tls"]
SETTINGS = "/api/v1/device/sip/settings"


class Device:
    """intercom-sip as a separate process, SIP on a fixed loopback port."""

    def __init__(
        self, data_dir: Path, ca_file: Path | None = None, sip_port: int | None = None
    ) -> None:
        self.sip_port = sip_port or free_port(both=True)
        self.data_dir, self.ca_file = data_dir, ca_file
        self.served: Served | None = None
        self.token = ""
        self.log_level = "debug"
        self.extra: tuple[str, ...] = ()

    def start(self) -> "Device":
        options = (
            "--sip-host",
            "127.0.0.1",
            "--sip-port",
            str(self.sip_port),
            *(("--tls-ca-file", str(self.ca_file)) if self.ca_file else ()),
            "--sip-t1",
            "0.1",
            "--sip-auth-retry",
            "1",
            "--sip-backoff-max",
            "1",
            "--log-level",
            self.log_level,
            *self.extra,
        )
        self.served = Served(self.data_dir, *options, env={})
        self.served.options = (*options, "--port", "0", "--data-dir", str(self.data_dir))
        self.served.start()
        self.token = self.served.login()
        return self

    def post(self, body: dict[str, Any]) -> tuple[int, Any]:
        assert self.served is not None
        return self.served.call("POST", SETTINGS, self.token, body)

    def status(self) -> dict[str, Any]:
        assert self.served is not None
        status, answer = self.served.call("GET", "/api/v1/sip/status", self.token)
        assert status == 200
        result: dict[str, Any] = answer
        return result

    def wait_status(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10
    ) -> dict[str, Any]:
        seen: list[dict[str, Any]] = []

        def check() -> bool:
            seen.append(self.status())
            return predicate(seen[-1])

        try:
            wait_for(check, timeout)
        except AssertionError:
            raise AssertionError(
                f"status never matched; last: {json.dumps(seen[-1:])}\n"
                + "\n".join(
                    line for line in self.log.splitlines() if "intercom_sip.access" not in line
                )
            ) from None
        return seen[-1]

    @property
    def log(self) -> str:
        return self.served.log if self.served else ""

    def stop(self) -> int:
        return self.served.stop() if self.served else 0

    def kill(self) -> None:
        assert self.served is not None
        self.served.kill()


def body(kamailio: Kamailio, transport: str = "udp", **changes: Any) -> dict[str, Any]:
    port = kamailio.tls_port if transport == "tls" else kamailio.sip_port
    return {
        "enable": True,
        "proxy": f"127.0.0.1:{port}",
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


@pytest.fixture
def device(tmp_path: Path, kamailio: Kamailio) -> Iterator[Device]:
    made = Device(tmp_path / "data", kamailio.ca_cert).start()
    yield made
    made.stop()


def untokened(contact: str) -> str:
    """A registered Contact without its token (`sip:101-<hex>@...` -> `sip:101@...`)."""
    return re.sub(r"^(sips?:[^@]*)-[0-9a-f]{16,}@", r"\1@", contact)


def token_of(contact: str) -> str:
    """The token of our registered Contact (CONTRACT §6.9)."""
    found = re.match(r"^sips?:[^@]*-([0-9a-f]{16,})@", contact)
    assert found is not None, contact
    return found[1]


# A registrar that grants 4 s at most: the agent refreshes 2 s after each REGISTER, so a
# test about the refresh sees one in seconds, not the 25 s of a 30 s interval.
BRIEF_GRANT = 4


@pytest.fixture
def brief_kamailio(kamailio_factory: MakeKamailio) -> Kamailio:
    return kamailio_factory(min_expires=2, max_expires=BRIEF_GRANT)


@pytest.fixture
def brief_device(tmp_path: Path, brief_kamailio: Kamailio) -> Iterator[Device]:
    made = Device(tmp_path / "data", brief_kamailio.ca_cert).start()
    yield made
    made.stop()


def registered(status: dict[str, Any]) -> bool:
    return status["sip_status"] == "OK" and status["state"] == "registered"


def only_binding(kamailio: Kamailio, user: str, device: Device) -> Any:
    found = kamailio.bindings(user)
    assert len(found) == 1, found
    assert f":{device.sip_port}" in found[0].contact or found[0].transport != "udp"
    return found[0]


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_registers_over_each_transport(kamailio: Kamailio, device: Device, transport: str) -> None:
    assert device.post(body(kamailio, transport))[0] == 200
    status = device.wait_status(registered)
    binding = only_binding(kamailio, "101", device)
    assert status["contact"] == binding.contact
    assert binding.transport.lower() == transport
    assert 25 <= (binding.expires or 0) <= 30
    assert (status["code"], status["reason"], status["expires"], status["transport"]) == (
        200,
        "OK",
        30,
        transport,
    )
    assert binding.instance is not None and binding.instance.startswith("<urn:uuid:")
    assert "response=" not in device.log
    assert "secret" not in device.log


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_disable_unregisters_and_enable_registers_again(
    kamailio: Kamailio, device: Device, transport: str
) -> None:
    device.post(body(kamailio, transport))
    device.wait_status(registered)
    assert device.post(body(kamailio, transport, enable=False))[0] == 200
    assert device.status()["sip_status"] == "OFFLINE"  # at once, from the settings
    wait_for(lambda: kamailio.bindings("101") == [])
    device.wait_status(lambda s: s["state"] == "disabled")
    device.post(body(kamailio, transport))
    device.wait_status(registered)
    only_binding(kamailio, "101", device)


@pytest.mark.parametrize(("before", "after"), [("udp", "tcp"), ("tcp", "tls"), ("tls", "udp")])
def test_transport_change_leaves_no_stale_binding(
    kamailio: Kamailio, device: Device, before: str, after: str
) -> None:
    device.post(body(kamailio, before))
    device.wait_status(registered)
    device.post(body(kamailio, after))
    device.wait_status(lambda s: registered(s) and s["transport"] == after)
    wait_for(lambda: len(kamailio.bindings("101")) == 1)
    assert only_binding(kamailio, "101", device).transport.lower() == after


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_user_change_moves_the_binding(kamailio: Kamailio, device: Device, transport: str) -> None:
    device.post(body(kamailio, transport))
    device.wait_status(registered)
    device.post(body(kamailio, transport, user="u102", password="p=>w$(d) 2"))
    device.wait_status(lambda s: registered(s) and "sip:u102-" in (s["contact"] or ""))
    wait_for(lambda: kamailio.bindings("101") == [])
    only_binding(kamailio, "u102", device)


def test_proxy_and_realm_changes_replace_the_binding(kamailio: Kamailio, device: Device) -> None:
    device.post(body(kamailio))
    device.wait_status(registered)
    # the same registrar by name: found through the resolver, old binding removed first
    device.post(body(kamailio, proxy=f"sip:localhost:{kamailio.sip_port}"))
    device.wait_status(registered)
    only_binding(kamailio, "101", device)
    device.post(body(kamailio, proxy=f"sip:localhost:{kamailio.sip_port}", realm="localhost"))
    # Kamailio keys its location table by user alone here: still exactly one binding
    device.wait_status(lambda s: registered(s) and "@localhost" not in (s["contact"] or ""))
    wait_for(lambda: len(kamailio.bindings("101")) == 1)
    assert device.log.count("SIP settings: replace") == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_password_user_id_and_interval_reregister_the_same_binding(
    kamailio: Kamailio, device: Device, transport: str
) -> None:
    device.post(body(kamailio, transport))
    device.wait_status(registered)
    first = only_binding(kamailio, "101", device)
    kamailio.set_password("101", "n3w-secret")
    device.post(body(kamailio, transport, password="n3w-secret", registration_interval=60))
    device.wait_status(lambda s: registered(s) and s["expires"] == 60)
    second = only_binding(kamailio, "101", device)
    assert (second.contact, second.call_id) == (first.contact, first.call_id)
    assert second.cseq > first.cseq
    # authenticate as another user (user_id) for the same address of record
    device.post(body(kamailio, transport, user_id="u102", password="p=>w$(d) 2"))
    wait_for(lambda: only_binding(kamailio, "101", device).cseq > second.cseq)
    assert registered(device.status())
    assert only_binding(kamailio, "101", device).call_id == first.call_id


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_wrong_password_then_fixed_at_the_registrar(
    kamailio: Kamailio, device: Device, transport: str
) -> None:
    device.post(body(kamailio, transport, password="wrong-pw"))
    status = device.wait_status(lambda s: s["state"] == "failed")
    assert (status["sip_status"], status["code"]) == ("ERROR", 401)
    assert kamailio.bindings("101") == []
    kamailio.set_password("101", "wrong-pw")  # fixed on the server's side
    device.wait_status(registered, timeout=10)
    only_binding(kamailio, "101", device)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_interval_too_brief_adopts_min_expires(
    kamailio_factory: MakeKamailio, tmp_path: Path, transport: str
) -> None:
    strict = kamailio_factory(min_expires=60, min_expires_mode=1)
    device = Device(tmp_path / "data", strict.ca_cert).start()
    try:
        device.post(body(strict, transport))
        status = device.wait_status(registered)
        assert status["expires"] == 60
        assert 55 <= (only_binding(strict, "101", device).expires or 0) <= 60
    finally:
        device.stop()


@pytest.mark.parametrize("certificate", ["untrusted", "wrong-name"])
def test_tls_certificate_that_fails_verification(
    kamailio_factory: MakeKamailio, tmp_path: Path, certificate: str
) -> None:
    untrusted = kamailio_factory(certificate=certificate)
    device = Device(tmp_path / "data", untrusted.ca_cert).start()
    try:
        device.post(body(untrusted, "tls"))
        status = device.wait_status(lambda s: s["state"] == "failed")
        assert (status["code"], status["reason"]) == (None, "TLS verification failed")
        assert untrusted.bindings("101") == []
    finally:
        device.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_registrar_down_at_start_then_up(
    kamailio: Kamailio, device: Device, transport: str
) -> None:
    kamailio.stop()
    device.post(body(kamailio, transport))
    status = device.wait_status(lambda s: s["state"] == "failed", timeout=15)
    # UDP hears of it from ICMP (port unreachable) as TCP/TLS from the refused connection
    assert status["reason"] == ("port unreachable" if transport == "udp" else "connection refused")
    kamailio.start()
    device.wait_status(registered, timeout=15)
    only_binding(kamailio, "101", device)


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_registrar_restart_is_noticed_on_streams(
    kamailio: Kamailio, device: Device, transport: str
) -> None:
    device.post(body(kamailio, transport))
    device.wait_status(registered)
    kamailio.restart()  # bindings lost; the connection drops
    wait_for(lambda: len(kamailio.bindings("101")) == 1, timeout=10)


def test_registrar_restart_on_udp_is_healed_by_the_refresh(
    brief_kamailio: Kamailio, brief_device: Device
) -> None:
    kamailio, device = brief_kamailio, brief_device
    device.post(body(kamailio))
    device.wait_status(lambda s: registered(s) and s["expires"] == BRIEF_GRANT)
    kamailio.restart()  # UDP learns nothing of it until the next REGISTER
    assert kamailio.bindings("101") == []
    wait_for(lambda: len(kamailio.bindings("101")) == 1, timeout=15)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sigkill_and_restart_keeps_one_binding(
    kamailio: Kamailio, device: Device, transport: str
) -> None:
    device.post(body(kamailio, transport))
    device.wait_status(registered)
    first = only_binding(kamailio, "101", device)
    device.kill()
    again = Device(device.data_dir, device.ca_file, device.sip_port).start()
    try:
        again.wait_status(registered)
        wait_for(lambda: kamailio.bindings("101")[0].call_id != first.call_id)
        second = only_binding(kamailio, "101", again)
        # The same instance: the registrar replaces the binding (RFC 5626). The contact
        # differs only in its token, new at each start (CONTRACT §6.9).
        assert (untokened(second.contact), second.instance) == (
            untokened(first.contact),
            first.instance,
        )
        assert second.contact != first.contact
    finally:
        again.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sigterm_unregisters(kamailio: Kamailio, device: Device, transport: str) -> None:
    device.post(body(kamailio, transport))
    device.wait_status(registered)
    assert device.stop() == 0
    assert kamailio.bindings("101") == []
    assert "unregistered" in device.log


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_refresh_before_the_grant_runs_out(
    brief_kamailio: Kamailio, brief_device: Device, transport: str
) -> None:
    """Asked 30 s, granted 4 s: refreshed at half the grant (the margin of 5 s would leave
    nothing), on the same Call-ID and contact."""
    kamailio, device = brief_kamailio, brief_device
    device.post(body(kamailio, transport))
    device.wait_status(lambda s: registered(s) and s["expires"] == BRIEF_GRANT)
    first = only_binding(kamailio, "101", device)
    wait_for(lambda: kamailio.bindings("101")[0].cseq > first.cseq, timeout=15)
    second = only_binding(kamailio, "101", device)
    assert (second.call_id, second.contact) == (first.call_id, first.contact)
    status = device.status()
    assert registered(status)
    assert status["next_refresh"] - status["register_last_attempt"] == BRIEF_GRANT // 2


def test_user_name_with_sip_specials(kamailio_factory: MakeKamailio, tmp_path: Path) -> None:
    user = "a#b c<%>"
    server = kamailio_factory(users={user: "s3cret!"})
    device = Device(tmp_path / "data", server.ca_cert).start()
    try:
        device.post(body(server, user=user, password="s3cret!"))
        status = device.wait_status(registered)
        assert untokened(status["contact"]).startswith("sip:a%23b%20c%3C%25%3E@127.0.0.1:")
        escaped = server.bindings("a%23b%20c%3C%25%3E") or server.bindings(user)
        assert len(escaped) == 1
        assert escaped[0].contact == status["contact"]
    finally:
        device.stop()


def test_rapid_changes_end_in_the_last_state(kamailio: Kamailio, device: Device) -> None:
    bodies = [
        body(kamailio, "udp"),
        body(kamailio, "tcp", user="u102", password="p=>w$(d) 2"),
        body(kamailio, "tls"),
        body(kamailio, "udp", enable=False),
        body(kamailio, "tcp", user="u102", password="p=>w$(d) 2", registration_interval=40),
    ]
    for each in bodies:
        assert device.post(each)[0] == 200
    device.wait_status(
        lambda s: registered(s) and s["transport"] == "tcp" and s["expires"] == 40, timeout=20
    )
    wait_for(lambda: kamailio.bindings("101") == [], timeout=10)
    assert only_binding(kamailio, "u102", device).transport.lower() == "tcp"


def test_debug_trace_redacts_credentials(kamailio: Kamailio, device: Device) -> None:
    device.post(body(kamailio, "tcp"))
    token = token_of(device.wait_status(registered)["contact"])
    log = device.log
    assert "REGISTER sip:kamailio.test SIP/2.0" in log  # the trace is there at debug level
    assert "Contact: <sip:101-<token>@" in log  # our REGISTER's, and the registrar's 200
    assert token not in log
    assert "Authorization: <redacted>" in log
    assert "response=" not in log
    assert "secret" not in log


def test_default_level_logs_no_sip_message(kamailio: Kamailio, tmp_path: Path) -> None:
    device = Device(tmp_path / "data", kamailio.ca_cert)
    device.log_level = "info"
    device.start()
    try:
        device.post(body(kamailio))
        token = token_of(device.wait_status(registered)["contact"])
    finally:
        device.stop()
    assert "REGISTER sip:" not in device.log
    assert "Authorization" not in device.log
    assert "registered at sip:101-<token>@" in device.log  # the state change, not the message
    assert token not in device.log


def sip_exchange(port: int, data: bytes, timeout: float = 2.0) -> bytes | None:
    """Send a datagram to the device's SIP port; its answer, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(data, ("127.0.0.1", port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def request(method: str, extra: str = "", user: str = "101") -> bytes:
    return (
        f"{method} sip:{user}@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKtest1\r\n"
        "From: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:101@127.0.0.1>\r\n"
        f"Call-ID: probe-1\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("method", "status_line"),
    [
        ("OPTIONS", b"SIP/2.0 200 OK\r\n"),
        ("INVITE", b"SIP/2.0 480 Temporarily Unavailable\r\n"),
        ("BYE", b"SIP/2.0 481 Call/Transaction Does Not Exist\r\n"),
        ("FOO", b"SIP/2.0 405 Method Not Allowed\r\n"),
    ],
)
def test_requests_get_an_answer(
    kamailio: Kamailio, device: Device, method: str, status_line: bytes
) -> None:
    """Requests the registrar delivers (at our Contact, token and all) for a user we do
    not serve; a stranger's get 403 (CONTRACT §6.9)."""
    device.post(body(kamailio))
    token = token_of(device.wait_status(registered)["contact"])
    answer = sip_exchange(device.sip_port, request(method, user=f"999-{token}"))
    assert answer is not None
    assert answer.startswith(status_line)
    assert b"Call-ID: probe-1\r\n" in answer
    assert b"CSeq: 1 " + method.encode() + b"\r\n" in answer


@pytest.mark.parametrize("method", ["OPTIONS", "INVITE", "BYE", "FOO"])
def test_a_strangers_requests_get_403(device: Device, method: str) -> None:
    answer = sip_exchange(device.sip_port, request(method))
    assert answer is not None
    assert answer.split(b"\r\n")[0] == b"SIP/2.0 403 Forbidden"


@pytest.mark.parametrize(
    "junk",
    [
        b"\x00\xff" * 100,
        b"GARBAGE\r\n\r\n",
        b"INVITE sip:x SIP/2.0\r\n\r\n",  # no Via: nowhere to answer
        b"OPTIONS sip:x SIP/7.0\r\nVia: SIP/2.0/UDP 1.2.3.4\r\n\r\n",
        request("OPTIONS").replace(b"CSeq: 1 OPTIONS", b"CSeq: 99999999999 OPTIONS"),
        request("OPTIONS").replace(b"Content-Length: 0", b"Content-Length: 900"),
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1"
        b"\r\nTo: <sip:a@b>\r\nCall-ID: not-ours\r\nCSeq: 1 REGISTER\r\n\r\n",
        b"X" * 65000,
        b"\r\n\r\n",
    ],
    ids=lambda junk: repr(junk[:24]),
)
def test_junk_never_crashes_the_agent(kamailio: Kamailio, device: Device, junk: bytes) -> None:
    device.post(body(kamailio))
    device.wait_status(registered)
    # Malformed requests whose Via can be read get the parser's 4xx/5xx (from the core);
    # the rest, nothing.
    refused = sip_exchange(device.sip_port, junk, timeout=0.3)
    assert refused is None or refused.startswith((b"SIP/2.0 4", b"SIP/2.0 5")), refused
    answer = sip_exchange(device.sip_port, request("OPTIONS"))
    assert answer is not None
    assert answer.startswith(b"SIP/2.0 200 OK\r\n")
    assert registered(device.status())
    assert "Traceback" not in device.log


def test_a_registrar_speaking_junk_over_tcp(tmp_path: Path) -> None:
    junk_server = socket.create_server(("127.0.0.1", 0))
    port = junk_server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        junk_server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = junk_server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n" + b"\xff" * 70000)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    device = Device(tmp_path / "data").start()
    try:
        device.post(
            {
                "enable": True,
                "proxy": f"127.0.0.1:{port}",
                "realm": "junk.test",
                "user": "101",
                "password": "secret",
                "transport": "tcp",
                "timeout": 120,
                "stun": {"ip": "", "port": 0},
            }
        )
        status = device.wait_status(
            lambda s: s["state"] == "failed" and s["reason"] in ("connection closed", "timeout")
        )
        assert status["sip_status"] == "ERROR"
        assert "Traceback" not in device.log
        assert device.served is not None
        assert device.served.call("GET", "/api/info")[0] == 200
    finally:
        device.stop()
        stop.set()
        thread.join(2)
        junk_server.close()


def test_stun_then_rport_leave_one_correct_binding(
    kamailio: Kamailio, device: Device, coturn: Any
) -> None:
    with UdpRelay(coturn.address) as relay:
        device.post(body(kamailio, stun={"ip": relay.address[0], "port": relay.address[1]}))
        device.wait_status(registered)
        # STUN through the relay names the relay's port; the registrar's rport then
        # corrects it to our real port, and the binding at the STUN port is removed.
        wait_for(
            lambda: (
                len(kamailio.bindings("101")) == 1
                and f":{device.sip_port};" in kamailio.bindings("101")[0].contact
            ),
            timeout=10,
        )
        mapped = relay.outside(("127.0.0.1", device.sip_port))
    status = device.status()
    assert status["public_address"] == f"127.0.0.1:{device.sip_port}"
    assert status["contact"] == kamailio.bindings("101")[0].contact
    assert f"STUN says our address is 127.0.0.1:{mapped[1]}" in device.log
    assert f"the registrar sees us at 127.0.0.1:{device.sip_port}" in device.log


class FakeRegistrar:
    """Grants every REGISTER without a challenge and counts keep-alive pings."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.pings = 0
        self.registers = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        if self.transport == "udp":
            while not self.stop.is_set():
                try:
                    data, peer = self.sock.recvfrom(65535)
                except TimeoutError:
                    continue
                self._take(data, lambda answer, p=peer: self.sock.sendto(answer, p))
            return
        self.sock.listen(4)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            conn.settimeout(0.1)
            buffer = b""
            while not self.stop.is_set():
                try:
                    chunk = conn.recv(65535)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                buffer += chunk
                while buffer.startswith(b"\r\n\r\n") or b"\r\n\r\n" in buffer:
                    message, _, buffer = buffer.partition(b"\r\n\r\n")
                    self._take(message + b"\r\n\r\n", conn.sendall)
            conn.close()

    def _take(self, data: bytes, reply: Callable[[bytes], Any]) -> None:
        if data == b"\r\n\r\n":
            self.pings += 1
            if self.transport != "udp":
                reply(b"\r\n")  # the pong
            return
        self.registers += 1
        head = data.decode().split("\r\n")
        keep = [
            line
            for line in head
            if line.split(":")[0] in ("Via", "From", "To", "Call-ID", "CSeq", "Contact")
        ]
        reply(
            (
                "SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nExpires: 300\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode()
        )

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_keepalives_hold_the_flow_open(tmp_path: Path, transport: str) -> None:
    registrar = FakeRegistrar(transport)
    device = Device(tmp_path / "data")
    device.extra = ("--sip-keepalive", "0.3")
    device.start()
    try:
        device.post(
            {
                "enable": True,
                "proxy": f"127.0.0.1:{registrar.port}",
                "realm": "fake.test",
                "user": "101",
                "password": "secret",
                "transport": transport,
                "timeout": 120,
                "stun": {"ip": "", "port": 0},
            }
        )
        device.wait_status(registered)
        wait_for(lambda: registrar.pings >= 3, timeout=5)
        assert registrar.registers == 1  # keep-alives, not re-registrations
    finally:
        device.stop()
        registrar.close()
