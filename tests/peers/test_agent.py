"""The SIP agent against a real Kamailio: its `ul.dump` is the ground truth."""

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.kamailio import Kamailio, MakeKamailio
from tests.peers.ports import free_port
from tests.served import Served, wait_for

pytestmark = pytest.mark.peers
SETTINGS = "/api/v1/device/sip/settings"


class Device:
    """intercom-sip as a separate process, SIP on a fixed loopback port."""

    def __init__(self, data_dir: Path, ca_file: Path, sip_port: int | None = None) -> None:
        self.sip_port = sip_port or free_port(both=True)
        self.data_dir, self.ca_file = data_dir, ca_file
        self.served: Served | None = None
        self.token = ""

    def start(self) -> "Device":
        options = (
            "--sip-host",
            "127.0.0.1",
            "--sip-port",
            str(self.sip_port),
            "--tls-ca-file",
            str(self.ca_file),
            "--sip-t1",
            "0.1",
            "--sip-auth-retry",
            "1",
            "--sip-backoff-max",
            "1",
            "--log-level",
            "debug",
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
    assert "Authorization" not in device.log
    assert "secret" not in device.log


def test_disable_unregisters_and_enable_registers_again(
    kamailio: Kamailio, device: Device
) -> None:
    device.post(body(kamailio))
    device.wait_status(registered)
    assert device.post(body(kamailio, enable=False))[0] == 200
    assert device.status()["sip_status"] == "OFFLINE"  # at once, from the settings
    wait_for(lambda: kamailio.bindings("101") == [])
    device.wait_status(lambda s: s["state"] == "disabled")
    device.post(body(kamailio))
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


def test_user_change_moves_the_binding(kamailio: Kamailio, device: Device) -> None:
    device.post(body(kamailio))
    device.wait_status(registered)
    device.post(body(kamailio, user="u102", password="p=>w$(d) 2"))
    device.wait_status(lambda s: registered(s) and "u102@" in (s["contact"] or ""))
    wait_for(lambda: kamailio.bindings("101") == [])
    only_binding(kamailio, "u102", device)


def test_password_and_interval_change_reregister_the_same_binding(
    kamailio: Kamailio, device: Device
) -> None:
    device.post(body(kamailio))
    device.wait_status(registered)
    first = only_binding(kamailio, "101", device)
    kamailio.set_password("101", "n3w-secret")
    device.post(body(kamailio, password="n3w-secret", registration_interval=60))
    device.wait_status(lambda s: registered(s) and s["expires"] == 60)
    second = only_binding(kamailio, "101", device)
    assert (second.contact, second.call_id) == (first.contact, first.call_id)
    assert second.cseq > first.cseq


def test_wrong_password_then_fixed_at_the_registrar(kamailio: Kamailio, device: Device) -> None:
    device.post(body(kamailio, password="wrong-pw"))
    status = device.wait_status(lambda s: s["state"] == "failed")
    assert (status["sip_status"], status["code"]) == ("ERROR", 401)
    assert kamailio.bindings("101") == []
    kamailio.set_password("101", "wrong-pw")  # fixed on the server's side
    device.wait_status(registered, timeout=10)
    only_binding(kamailio, "101", device)


def test_interval_too_brief_adopts_min_expires(
    kamailio_factory: MakeKamailio, tmp_path: Path
) -> None:
    strict = kamailio_factory(min_expires=60, min_expires_mode=1)
    device = Device(tmp_path / "data", strict.ca_cert).start()
    try:
        device.post(body(strict))
        status = device.wait_status(registered)
        assert status["expires"] == 60
        assert 55 <= (only_binding(strict, "101", device).expires or 0) <= 60
    finally:
        device.stop()


def test_tls_certificate_that_fails_verification(
    kamailio_factory: MakeKamailio, tmp_path: Path
) -> None:
    untrusted = kamailio_factory(certificate="untrusted")
    device = Device(tmp_path / "data", untrusted.ca_cert).start()
    try:
        device.post(body(untrusted, "tls"))
        status = device.wait_status(lambda s: s["state"] == "failed")
        assert (status["code"], status["reason"]) == (None, "TLS verification failed")
        assert untrusted.bindings("101") == []
    finally:
        device.stop()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_registrar_down_at_start_then_up(
    kamailio: Kamailio, device: Device, transport: str
) -> None:
    kamailio.stop()
    device.post(body(kamailio, transport))
    status = device.wait_status(lambda s: s["state"] == "failed", timeout=15)
    assert status["reason"] == ("timeout" if transport == "udp" else "connection refused")
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


def test_sigkill_and_restart_keeps_one_binding(kamailio: Kamailio, device: Device) -> None:
    device.post(body(kamailio))
    device.wait_status(registered)
    first = only_binding(kamailio, "101", device)
    device.kill()
    again = Device(
        device.data_dir, kamailio.ca_file if False else device.ca_file, device.sip_port
    ).start()
    try:
        again.wait_status(registered)
        wait_for(lambda: kamailio.bindings("101")[0].call_id != first.call_id)
        second = only_binding(kamailio, "101", again)
        assert (second.contact, second.instance) == (first.contact, first.instance)
    finally:
        again.stop()


def test_sigterm_unregisters(kamailio: Kamailio, device: Device) -> None:
    device.post(body(kamailio, "tcp"))
    device.wait_status(registered)
    assert device.stop() == 0
    assert kamailio.bindings("101") == []


def test_refresh_before_the_grant_runs_out(kamailio: Kamailio, device: Device) -> None:
    device.post(body(kamailio))
    device.wait_status(registered)
    first = only_binding(kamailio, "101", device)
    wait_for(lambda: kamailio.bindings("101")[0].cseq > first.cseq, timeout=30)
    status = device.status()
    assert registered(status)
    assert status["register_last_attempt"] > 0
