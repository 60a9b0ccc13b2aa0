"""500 monitors in one process (issue 14): `intercom-sip serve --devices 500`, users 2000 to
2499 at one Kamailio. Kamailio's `ul.dump` is the judge of who is registered where."""

import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from intercom_sip import errors
from intercom_sip.contract.fields import FACTORY
from intercom_sip.contract.settings import Settings
from intercom_sip.contract.validation import validate
from intercom_sip.store import Store
from tests.building import Building
from tests.peers import kamcmd, sipp
from tests.peers.kamailio import Kamailio, MakeKamailio
from tests.peers.kamcmd import Binding
from tests.peers.ports import free_rtp_window
from tests.peers.registrar import Behaviour, Registrar
from tests.peers.test_agent import Device as AgentDevice
from tests.peers.test_agent import registered as registered_status
from tests.served import wait_for

pytestmark = pytest.mark.peers

DEVICES = 500
FIRST_USER = 2000
USERS = {str(FIRST_USER + i): f"pw{FIRST_USER + i}" for i in range(DEVICES)}
ALL_REGISTERED = 30.0  # seconds from the start (issue 14)
INTERVAL = 600  # no refresh during the test: a binding that changes was changed by it
SETTINGS = "/api/v1/device/sip/settings"
STATUS = "/api/v1/call/status"
AUTO_ANSWER = "/api/v1/device/call/auto_answer"


def index(user: int) -> int:
    return user - FIRST_USER


@pytest.fixture
def kamailio(kamailio_factory: MakeKamailio) -> Kamailio:
    return kamailio_factory(users=USERS)


def settings_of(kamailio: Kamailio, user: str, **changes: Any) -> dict[str, Any]:
    return {
        "enable": True,
        "proxy": f"127.0.0.1:{kamailio.sip_port}",
        "realm": kamailio.realm,
        "user": user,
        "password": USERS[user],
        "transport": "udp",
        "user_id": "",
        "timeout": 120,
        "registration_interval": INTERVAL,
        "stun": {"ip": "", "port": 0},
        **changes,
    }


def seed(building: Building, kamailio: Kamailio) -> None:
    """Each device's settings in its store before the start, as a device that ran before
    holds them (the API sets them the same way; 500 logins would cost 500 scrypt hashes)."""

    def one(i: int) -> None:
        settings = validate(settings_of(kamailio, str(FIRST_USER + i)), FACTORY)
        assert isinstance(settings, Settings), settings
        store = Store.open(building.data_dir / building.address(i))
        store.save_settings(settings, FACTORY, time.time(), "test")
        store.close()

    with ThreadPoolExecutor(8) as pool:  # each commit waits on its fsync: side by side
        list(pool.map(one, range(building.devices)))


def contacts(kamailio: Kamailio) -> int:
    """How many contacts Kamailio's location table holds (its statistic: cheap to poll)."""
    text = kamcmd.run(kamailio.ctl, "stats.get_statistics", "usrloc:", timeout=10)
    counts = dict(line.split(" = ") for line in text.splitlines() if " = " in line)
    return int(counts["usrloc:location_contacts"])


def registered(kamailio: Kamailio) -> set[str]:
    """The AoRs in Kamailio's location table: `ul.dump brief` (a whole `ul.dump` of 500
    contacts is more than kamcmd takes: "reply too big")."""
    text = kamcmd.run(kamailio.ctl, "ul.dump", "brief", timeout=10)
    return {line.strip()[4:].strip() for line in text.splitlines() if "AoR:" in line}


def bindings(kamailio: Kamailio, aors: Iterable[str]) -> dict[str, list[Binding]]:
    """Each AoR's contacts, from `ul.lookup` (a few kamcmds at a time)."""
    chosen = sorted(aors)
    with ThreadPoolExecutor(8) as pool:
        found = pool.map(lambda aor: kamcmd.lookup(kamailio.ctl, aor), chosen)
        return dict(zip(chosen, found, strict=True))


def at(binding: Binding) -> str:
    """The address of a contact: `sip:2001-<token>@127.x.y.z:port;...` -> `127.x.y.z`."""
    return binding.contact.partition("@")[2].partition(":")[0]


@pytest.fixture
def building(tmp_path: Path, kamailio: Kamailio) -> Iterator[Building]:
    made = Building(
        tmp_path / "data",
        DEVICES,
        "--rtp-ports",
        free_rtp_window(),
        "--auto-answer-delay",
        "0.2",
    )
    seed(made, kamailio)
    yield made
    made.stop()


@pytest.mark.usefixtures("sipp")
def test_500_monitors_in_one_process(building: Building, kamailio: Kamailio) -> None:
    started = time.monotonic()
    building.start(timeout=ALL_REGISTERED)
    expected = {str(FIRST_USER + i): building.address(i) for i in range(DEVICES)}
    wait_for(lambda: contacts(kamailio) >= DEVICES, ALL_REGISTERED)
    took = time.monotonic() - started
    assert took < ALL_REGISTERED
    print(f"{DEVICES} monitors registered {took:.1f} s after the start")
    assert registered(kamailio) == set(expected)
    seen = bindings(kamailio, expected)
    assert {aor: [at(b) for b in found] for aor, found in seen.items()} == {
        aor: [address] for aor, address in expected.items()
    }

    # A token of device 2001 is refused by device 2002.
    token = building.login(index(2001))
    assert building.call(index(2001), "GET", SETTINGS, token)[0] == 200
    assert building.call(index(2002), "GET", SETTINGS, token) == (401, {"error": errors.LOG_IN})

    # A settings POST to device 2100 re-registers that device alone.
    before = {aor: (b[0].call_id, b[0].cseq) for aor, b in seen.items()}
    token = building.login(index(2100))
    body = settings_of(kamailio, "2100", registration_interval=INTERVAL + 60)
    assert building.call(index(2100), "POST", SETTINGS, token, body)[0] == 200
    wait_for(lambda: kamailio.bindings("2100")[0].cseq > before["2100"][1], 10)
    after = {aor: (b[0].call_id, b[0].cseq) for aor, b in bindings(kamailio, expected).items()}
    changed = {aor for aor in after if after[aor] != before[aor]}
    assert changed == {"2100"}

    # An INVITE for user 2257 rings device 2257 alone; it is answered through its API.
    callee = index(2257)
    token = building.login(callee)
    assert building.call(callee, "POST", AUTO_ANSWER, token, {"is_enabled": False})[0] == 200
    caller = sipp.Sipp(
        "uac_wait_bye.xml", ("127.0.0.1", kamailio.sip_port), service="2257", timeout=60
    )
    with caller:
        wait_for(lambda: building.call(callee, "GET", STATUS, token)[1]["state"] == "ringing", 15)
        assert building.call(callee, "POST", "/api/v1/call/answer", token)[0] == 200
        wait_for(lambda: building.call(callee, "GET", STATUS, token)[1]["state"] == "active", 15)
        assert building.call(callee, "POST", "/api/v1/call/hangup", token)[0] == 200
        result = caller.wait()
    assert result.ok, result.report()
    assert "SIP/2.0 180" in result.messages
    logged = {i for i in range(DEVICES) if calls_of(building, i)}
    assert logged == {callee}


def calls_of(building: Building, i: int) -> int:
    """The calls in device i's call log, read from its store (WAL: beside the writer)."""
    store = Store.open(building.data_dir / building.address(i))
    try:
        return len(store.calls(10))
    finally:
        store.close()


def test_a_registrars_503_retry_after_is_waited_out(tmp_path: Path) -> None:
    """A registrar that answers 503 with Retry-After (an overloaded one, while a building
    starts): the next REGISTER comes no sooner than it asked, then registers."""
    with Registrar(Behaviour(mode="busy", retry_after=2)) as registrar:
        device = AgentDevice(tmp_path / "data").start()  # --sip-backoff-max 1
        try:
            body = {
                "enable": True,
                "proxy": registrar.proxy,
                "realm": registrar.behaviour.realm,
                "user": "101",
                "password": "secret",
                "transport": "udp",
                "timeout": 120,
                "registration_interval": 30,
                "stun": {"ip": "", "port": 0},
            }
            assert device.post(body)[0] == 200
            wait_for(lambda: len(registrar.attempts()) >= 2, 15)
            first, second = registrar.attempts()[:2]
            assert (first.code, second.code) == (503, 503)
            assert second.at - first.at >= 2.0  # the backoff alone: about 1 s
            registrar.behaviour = replace(registrar.behaviour, mode="serve")
            device.wait_status(registered_status, 15)
        finally:
            device.stop()
