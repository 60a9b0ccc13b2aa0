"""Digest auth of the served agent against registrars unlike Kamailio's defaults.

Our registrar (tests/peers/registrar.py) counts every REGISTER it receives; Kamailio with
one_time_nonce counts them in its `core:rcv_requests_register` statistic. A wrong password
must cost two REGISTERs per attempt, an attempt every `--sip-auth-retry` seconds at most.
"""

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.peers import kamcmd
from tests.peers.kamailio import Kamailio, MakeKamailio
from tests.peers.registrar import Behaviour, Registrar
from tests.peers.test_agent import Device, registered
from tests.served import wait_for

pytestmark = pytest.mark.peers
AUTH_RETRY = 3.0  # --sip-auth-retry; the agent adds up to 25 %


def settings(proxy: str, realm: str, password: str = "secret", **changes: Any) -> dict[str, Any]:
    return {
        "enable": True,
        "proxy": proxy,
        "realm": realm,
        "user": "101",
        "password": password,
        "transport": "udp",
        "timeout": 120,
        "registration_interval": 30,
        "stun": {"ip": "", "port": 0},
        **changes,
    }


def failed_with(code: int) -> Any:
    return lambda s: s["state"] == "failed" and s["code"] == code


@pytest.fixture
def registrar() -> Iterator[Registrar]:
    with Registrar(Behaviour(nonces="per-challenge")) as made:
        yield made


@pytest.fixture
def device(tmp_path: Path) -> Iterator[Device]:
    made = Device(tmp_path / "data")
    made.extra = ("--sip-auth-retry", str(AUTH_RETRY))
    made.start()
    yield made
    made.stop()


# --- finding 7: a new nonce with every 401 ----------------------------------------------


def test_wrong_password_with_a_new_nonce_every_401_is_not_a_flood(
    registrar: Registrar, device: Device
) -> None:
    device.post(settings(registrar.proxy, "fake.test", password="wrong-pw"))
    status = device.wait_status(failed_with(401))
    assert (status["sip_status"], status["reason"]) == ("ERROR", "Unauthorized")
    assert registrar.codes() == [401, 401]  # asked, answered, refused: failed
    # The retry comes after the auth-retry time, and costs two REGISTERs again.
    wait_for(lambda: len(registrar.attempts()) >= 4, timeout=AUTH_RETRY * 1.25 + 10)
    time.sleep(1.0)
    sent = registrar.attempts()
    assert [r.code for r in sent] == [401, 401, 401, 401]
    assert sent[2].at - sent[1].at >= AUTH_RETRY
    nonces = [r.authorization.get("nonce") for r in sent]
    assert nonces[0] is None
    assert nonces[1] == nonces[2] != nonces[3]  # the retry with the cached nonce, nc+1
    assert registrar.bindings("101") == []


def test_unregister_while_the_registrar_refuses_gives_up(
    registrar: Registrar, device: Device
) -> None:
    device.post(settings(registrar.proxy, "fake.test"))
    device.wait_status(registered)
    before = len(registrar.attempts())
    registrar.behaviour = replace(registrar.behaviour, users={"101": "changed-at-the-server"})
    device.post(settings(registrar.proxy, "fake.test", enable=False))
    device.wait_status(lambda s: s["state"] == "disabled")
    time.sleep(1.0)
    after = registrar.attempts()[before:]
    assert [(r.code, r.request.headers.get("Expires")) for r in after] == [
        (401, "0"),  # the cached nonce: answered once more
        (401, "0"),  # our answer to its new challenge refused: give up
    ]
    assert "un-REGISTER answered 401 Unauthorized; the binding expires by itself" in device.log


def test_stale_forever_is_bounded(device: Device) -> None:
    with Registrar(Behaviour(nonces="one-time", stale="always")) as registrar:
        device.post(settings(registrar.proxy, "fake.test", password="wrong-pw"))
        device.wait_status(failed_with(401))
        time.sleep(0.5)
        # The first, our answer, and one more answer to its stale=true; then failed.
        assert registrar.codes() == [401, 401, 401]


def test_stale_after_a_reused_nonce_is_answered_once_more(device: Device) -> None:
    behaviour = Behaviour(nonces="one-time", grant=6)  # refresh every 3 s
    with Registrar(behaviour) as registrar:
        device.post(settings(registrar.proxy, "fake.test"))
        device.wait_status(registered)
        wait_for(lambda: len(registrar.attempts()) >= 4, timeout=15)
        sent = registrar.attempts()[:4]
        assert registered(device.status())
    assert [r.code for r in sent] == [401, 200, 401, 200]
    assert sent[2].authorization["nonce"] == sent[1].authorization["nonce"]  # reused, nc+1
    assert sent[2].authorization["nc"] == "00000002"
    assert sent[3].authorization["nc"] == "00000001"


def test_a_407_with_a_new_nonce_every_time_is_not_a_flood(device: Device) -> None:
    with Registrar(Behaviour(nonces="per-challenge", proxy_auth=True)) as registrar:
        device.post(settings(registrar.proxy, "fake.test", password="wrong-pw"))
        device.wait_status(failed_with(407))
        time.sleep(0.5)
        assert registrar.codes() == [407, 407]
        assert "Proxy-Authorization" in dict(registrar.attempts()[1].request.headers)


# --- finding 12: several challenges ------------------------------------------------------


@pytest.mark.parametrize(
    ("challenges", "one_header"),
    [
        (("Digest SHA-512-256", "Digest MD5"), False),
        (("Basic", "Digest MD5"), False),
        (("Digest MD5", "Digest SHA-512-256"), True),  # one header, HTTP style
    ],
)
def test_the_first_challenge_we_support_is_answered(
    device: Device, challenges: tuple[str, ...], one_header: bool
) -> None:
    behaviour = Behaviour(challenges=challenges, one_header=one_header)
    with Registrar(behaviour) as registrar:
        device.post(settings(registrar.proxy, "fake.test"))
        device.wait_status(registered)
        assert registrar.codes() == [401, 200]
        assert registrar.registers()[1].authorization["algorithm"] == "MD5"
        assert registrar.bindings("101") == [device.status()["contact"]]


# --- Kamailio with one_time_nonce: the flood of finding 7, for real ---------------------


def kamailio_registers(kamailio: Kamailio) -> int:
    """REGISTERs Kamailio has received, from its own statistics."""
    out = kamcmd.run(kamailio.ctl, "stats.get_statistics", "all")
    line = next(x for x in out.splitlines() if x.startswith("core:rcv_requests_register"))
    return int(line.rpartition("=")[2])


@pytest.fixture
def otn_kamailio(kamailio_factory: MakeKamailio) -> Kamailio:
    return kamailio_factory(nonces="one_time_nonce")


def test_kamailio_one_time_nonce_wrong_password(otn_kamailio: Kamailio, device: Device) -> None:
    proxy = f"127.0.0.1:{otn_kamailio.sip_port}"
    device.post(settings(proxy, "kamailio.test", password="wrong-pw"))
    device.wait_status(failed_with(401))
    assert kamailio_registers(otn_kamailio) == 2
    wait_for(lambda: kamailio_registers(otn_kamailio) >= 4, timeout=AUTH_RETRY * 1.25 + 10)
    time.sleep(1.0)
    assert kamailio_registers(otn_kamailio) == 4
    assert device.status()["state"] == "failed"


def test_kamailio_one_time_nonce_registers_and_unregisters(
    otn_kamailio: Kamailio, device: Device
) -> None:
    proxy = f"127.0.0.1:{otn_kamailio.sip_port}"
    device.post(settings(proxy, "kamailio.test"))
    device.wait_status(registered)
    assert len(otn_kamailio.bindings("101")) == 1
    otn_kamailio.set_password("101", "changed-at-the-server")
    before = kamailio_registers(otn_kamailio)
    device.post(settings(proxy, "kamailio.test", enable=False))
    device.wait_status(lambda s: s["state"] == "disabled")
    time.sleep(1.0)
    assert kamailio_registers(otn_kamailio) - before == 2
    assert len(otn_kamailio.bindings("101")) == 1  # refused: it expires by itself


@pytest.mark.parametrize("nonces", ["one_time_nonce", "nonce_count"])
def test_kamailio_nonce_modes_refresh(
    kamailio_factory: MakeKamailio, device: Device, nonces: str
) -> None:
    kamailio = kamailio_factory(nonces=nonces, min_expires=2, max_expires=4)
    device.post(settings(f"127.0.0.1:{kamailio.sip_port}", "kamailio.test"))
    device.wait_status(registered)
    first = kamailio_registers(kamailio)
    # Granted 4 s, refreshed at 2 s: the refresh too ends registered.
    wait_for(lambda: kamailio_registers(kamailio) > first, timeout=15)
    status = device.wait_status(lambda s: registered(s) and s["code"] == 200)
    assert status["expires"] == 4
    assert len(kamailio.bindings("101")) == 1
