"""Contract §7: /api/info, /device/sip/enable and /device/sip/reregister, and §3.4's user_id,
through the ASGI app over a real store."""

import json
import re
from pathlib import Path
from typing import Any

import pytest

from intercom_sip.agent import status
from intercom_sip.contract.fields import FACTORY
from intercom_sip.contract.settings import to_view
from intercom_sip.device import NoAgent
from tests.conftest import Rig, make_rig
from tests.test_validation import BASE

SETTINGS = "/api/v1/device/sip/settings"
ENABLE = "/api/v1/device/sip/enable"
REREGISTER = "/api/v1/device/sip/reregister"
INCOMPLETE = (
    400,
    {
        "error": "Wrong JSON body: value `sip_enable` is invalid:"
        " proxy must not be empty when enable is true"
    },
)


class CountingAgent(NoAgent):
    def __init__(self) -> None:
        self.reregistered = 0

    def reregister(self) -> None:
        self.reregistered += 1

    def status(self) -> status.Status:
        return status.Status()


# --- /api/info ----------------------------------------------------------------------------


def test_info_has_every_key_clients_require(rig: Rig) -> None:
    status_code, info = rig.client.get("/api/info")
    assert status_code == 200
    for key in ("framework_version", "device_type", "device_serial_number", "commit"):
        assert isinstance(info[key], str), key
    assert info["hybrid_enable"] is False
    assert re.fullmatch("[0-9A-F]{16}", info["device_serial_number"])


def test_serial_number_is_made_once_and_kept(tmp_path: Path) -> None:
    def serial(data: Path) -> str:
        made = make_rig(data)
        try:
            number: str = made.client.get("/api/info")[1]["device_serial_number"]
            return number
        finally:
            made.client.close()
            made.store.close()

    first = serial(tmp_path / "one")
    assert serial(tmp_path / "one") == first  # a restart keeps it
    assert serial(tmp_path / "two") != first  # another device has another


# --- /device/sip/enable -------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/api/v1", "/api/v0"])
def test_enable_reads_the_stored_settings(rig: Rig, prefix: str) -> None:
    token = rig.login()
    assert rig.client.get(f"{prefix}/device/sip/enable", token) == (200, {"sip_enable": False})
    rig.client.post(SETTINGS, BASE, token)
    assert rig.client.get(f"{prefix}/device/sip/enable", token) == (200, {"sip_enable": True})


def test_enable_switches_enable_alone_durably_with_history(rig: Rig) -> None:
    token = rig.login()
    _, view = rig.client.post(SETTINGS, {**BASE, "user_id": "auth1"}, token)
    body = {"sip_enable": False, "is_reregister": True, "reregister_time": 30}
    assert rig.client.post(ENABLE, body, token) == (200, {"sip_enable": False})
    assert rig.client.get(SETTINGS, token) == (200, {**view, "enable": False})
    stored = rig.store.load_settings()
    assert stored is not None
    assert (stored.enable, stored.password, stored.user_id) == (False, "secret1", "auth1")
    latest = rig.store.history()[0]
    assert (latest.actor, latest.settings, latest.password_changed) == (
        "admin@127.0.0.1",
        {**view, "enable": False},
        False,
    )
    assert rig.client.post(ENABLE, {"sip_enable": True}, token) == (200, {"sip_enable": True})
    assert rig.client.get(SETTINGS, token) == (200, view)
    assert len(rig.store.history()) == 3


def test_enable_same_value_records_nothing(rig: Rig) -> None:
    token = rig.login()
    rig.client.post(SETTINGS, BASE, token)
    assert rig.client.post(ENABLE, {"sip_enable": True}, token) == (200, {"sip_enable": True})
    assert len(rig.store.history()) == 1


def test_enable_refuses_an_incomplete_account(rig: Rig) -> None:
    token = rig.login()
    assert rig.client.post(ENABLE, {"sip_enable": True}, token) == INCOMPLETE
    assert rig.store.load_settings() is None
    # a disabled account with a user but no password: the first empty field is named
    partial = {**to_view(FACTORY), "proxy": "pbx.example.com", "realm": "example.com"}
    partial |= {"user": "101"}
    assert rig.client.post(SETTINGS, partial, token)[0] == 200
    assert rig.client.post(ENABLE, {"sip_enable": True}, token) == (
        400,
        {
            "error": "Wrong JSON body: value `sip_enable` is invalid:"
            " password must not be empty when enable is true"
        },
    )
    assert rig.client.get(ENABLE, token) == (200, {"sip_enable": False})
    assert len(rig.store.history()) == 1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "Wrong JSON body"),
        (b"[true]", "Wrong JSON body"),
        (b'{"sip_enable": true, "sip_enable": false}', "Wrong JSON body"),
        (b'{"sip_enable": NaN}', "Wrong JSON body"),
        (b"{}", "Wrong JSON body: no value for `sip_enable`"),
        (b'{"enable": false}', "Wrong JSON body: no value for `sip_enable`"),
        (b'{"sip_enable": null}', "Wrong JSON body: value `sip_enable` was of the wrong type"),
        (b'{"sip_enable": 0}', "Wrong JSON body: value `sip_enable` was of the wrong type"),
        (b'{"sip_enable": "false"}', "Wrong JSON body: value `sip_enable` was of the wrong type"),
    ],
)
def test_enable_body_errors_change_nothing(rig: Rig, raw: bytes, message: str) -> None:
    token = rig.login()
    rig.client.post(SETTINGS, BASE, token)
    assert rig.client.post(ENABLE, raw, token) == (400, {"error": message})
    assert rig.client.get(ENABLE, token) == (200, {"sip_enable": True})
    assert len(rig.store.history()) == 1


def test_enable_body_limit_and_auth(rig: Rig) -> None:
    token = rig.login()
    headers = [("Authorization", f"Bearer {token}")]
    padded = json.dumps({"sip_enable": False}).encode() + b" " * 65537
    assert rig.client.request("POST", ENABLE, padded, headers) == (
        413,
        {"error": "Request body too large"},
    )
    assert rig.client.post(ENABLE, {"sip_enable": False}) == (401, {"error": "Log In"})
    assert rig.client.get(ENABLE) == (401, {"error": "Log In"})


# --- /device/sip/reregister ---------------------------------------------------------------


@pytest.fixture
def agent_rig(tmp_path: Path) -> Any:
    agent = CountingAgent()
    made = make_rig(tmp_path / "data", agent)
    yield made, agent
    made.client.close()


def test_reregister_when_disabled_is_a_conflict(agent_rig: Any) -> None:
    rig, agent = agent_rig
    token = rig.login()
    assert rig.client.request(
        "POST", REREGISTER, headers=[("Authorization", f"Bearer {token}")]
    ) == (409, {"error": "SIP is disabled"})
    assert agent.reregistered == 0


@pytest.mark.parametrize("prefix", ["/api/v1", "/api/v0"])
def test_reregister_asks_the_agent(agent_rig: Any, prefix: str) -> None:
    rig, agent = agent_rig
    token = rig.login()
    rig.client.post(SETTINGS, BASE, token)
    assert rig.client.post(f"{prefix}/device/sip/reregister", b"", token) == (200, {})
    assert rig.client.post(f"{prefix}/device/sip/reregister", {"any": 1}, token) == (200, {})
    assert agent.reregistered == 2
    assert rig.client.post(REREGISTER, b"") == (401, {"error": "Log In"})
    assert rig.client.get(REREGISTER, token) == (405, {"error": "Method not allowed"})
    assert agent.reregistered == 2


# --- §3.4 user_id, through the app ------------------------------------------------------------


def test_new_account_without_user_id_drops_the_old_one(rig: Rig) -> None:
    token = rig.login()
    rig.client.post(SETTINGS, {**BASE, "user_id": "auth1"}, token)
    body = {k: v for k, v in BASE.items() if k != "user_id"} | {"user": "202"}
    status_code, view = rig.client.post(SETTINGS, body, token)
    assert (status_code, view["user"], view["user_id"]) == (200, "202", "")
