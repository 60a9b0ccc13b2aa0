"""Contract §6 through the ASGI app: the call routes and their vendor aliases, the call log
and auto-answer, over a real store and a fake phone. Every answer is also checked against
the OpenAPI document (tests/asgi.py)."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from intercom_sip.api.endpoints import ENDPOINTS
from intercom_sip.calls import CallRecord, RtpFigures
from intercom_sip.contract.dialing import DialKind, DialTarget
from tests.conftest import Rig, make_rig
from tests.phones import STARTED, FakePhone

V1 = "/api/v1"
IDLE_VIEW = {
    "state": "idle",
    "id": None,
    "direction": None,
    "remote": None,
    "started": None,
    "answered": None,
    "ends_at": None,
    "duration": None,
    "codec": None,
    "srtp": None,
    "dtmf_received": None,
    "rtp": None,
}
RINGING_VIEW = {
    **IDLE_VIEW,
    "state": "ringing",
    "id": "c-1",
    "direction": "in",
    "remote": "sip:100@example.com",
    "started": STARTED,
}
ACTIVE_VIEW = {
    **RINGING_VIEW,
    "state": "active",
    "answered": STARTED + 2,
    "ends_at": STARTED + 122,
    "duration": 0,
    "codec": "PCMU",
    "srtp": False,
    "dtmf_received": "",
    "rtp": {"sent": 0, "received": 0, "lost": 0, "jitter_ms": 0.0},
}
NO_CALL = (409, {"error": "No call"})


@dataclass
class PhoneRig:
    rig: Rig
    phone: FakePhone
    token: str

    def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        return self.rig.client.get(V1 + path, self.token, **kwargs)

    def post(self, path: str, body: Any = b"") -> tuple[int, Any]:
        return self.rig.client.post(V1 + path, body, self.token)


@pytest.fixture
def pr(tmp_path: Path) -> Iterator[PhoneRig]:
    phone = FakePhone()
    rig = make_rig(tmp_path / "data", phone=phone)
    yield PhoneRig(rig, phone, rig.login())
    rig.client.close()


# --- every new route: both prefixes, auth first -----------------------------------------------

CALL_ENDPOINTS = [e for e in ENDPOINTS if "/call" in e.path]


def test_the_call_routes_are_all_there() -> None:
    assert sorted((e.method, e.path) for e in CALL_ENDPOINTS) == [
        ("GET", "/v1/call/history"),
        ("GET", "/v1/call/status"),
        ("GET", "/v1/device/call/auto_answer"),
        ("GET", "/v1/system/call/status"),
        ("POST", "/v1/call/answer"),
        ("POST", "/v1/call/dial"),
        ("POST", "/v1/call/dtmf"),
        ("POST", "/v1/call/hangup"),
        ("POST", "/v1/device/call/auto_answer"),
        ("POST", "/v1/system/debug/call/end"),
        ("POST", "/v1/system/debug/call/start"),
    ]


@pytest.mark.parametrize("endpoint", CALL_ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_every_call_route_needs_a_token_first(pr: PhoneRig, endpoint: Any) -> None:
    for path in endpoint.full_paths():
        # a body that would be refused is not even read without a token
        assert pr.rig.client.request(endpoint.method, path, b"{") == (401, {"error": "Log In"})
    assert pr.phone.current.state == "idle"


@pytest.mark.parametrize("path", ["/call/status", "/system/call/status"])
@pytest.mark.parametrize("prefix", ["/api/v1", "/api/v0"])
def test_status_idle_has_every_key_null(pr: PhoneRig, prefix: str, path: str) -> None:
    assert pr.rig.client.get(prefix + path, pr.token) == (200, IDLE_VIEW)


def test_status_follows_the_phone(pr: PhoneRig) -> None:
    pr.phone.ring()
    assert pr.get("/call/status") == (200, RINGING_VIEW)
    assert pr.get("/system/call/status") == (200, RINGING_VIEW)


def test_status_and_actions_answer_405_to_other_methods(pr: PhoneRig) -> None:
    assert pr.post("/call/status") == (405, {"error": "Method not allowed"})
    assert pr.get("/call/answer") == (405, {"error": "Method not allowed"})
    assert pr.get("/system/debug/call/start") == (405, {"error": "Method not allowed"})


# --- answer, hangup ---------------------------------------------------------------------------


def test_answer_a_ringing_call(pr: PhoneRig) -> None:
    pr.phone.ring()
    assert pr.post("/call/answer") == (200, ACTIVE_VIEW)
    assert pr.post("/call/answer") == NO_CALL  # answered already


def test_answer_without_a_ringing_call_is_no_call(pr: PhoneRig) -> None:
    assert pr.post("/call/answer") == NO_CALL
    pr.post("/call/dial", {"number": "102"})
    assert pr.post("/call/answer") == NO_CALL  # an outgoing call is not ours to answer
    assert pr.phone.current.state == "calling"


@pytest.mark.parametrize("path", ["/call/hangup", "/system/debug/call/end"])
def test_hangup_ends_the_call_and_answers_idle(pr: PhoneRig, path: str) -> None:
    assert pr.post(path) == NO_CALL
    pr.phone.ring()
    assert pr.post(path, {"ignored": True}) == (200, IDLE_VIEW)
    assert pr.post(path) == NO_CALL


# --- dial -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/call/dial", "/system/debug/call/start"])
@pytest.mark.parametrize(
    ("number", "target", "remote"),
    [
        ("102", DialTarget(DialKind.DIGITS, "102", None), "sip:102@example.com"),
        (
            "sip:door@pbx.example.com",
            DialTarget(DialKind.URI, "door", "pbx.example.com"),
            "sip:door@pbx.example.com",
        ),
        (
            "sip:192.168.1.20",
            DialTarget(DialKind.DIRECT, None, "192.168.1.20"),
            "sip:192.168.1.20",
        ),
    ],
)
def test_dial_answers_calling(
    pr: PhoneRig, path: str, number: str, target: DialTarget, remote: str
) -> None:
    status, view = pr.post(path, {"number": number, "other": 1})
    expected = {**IDLE_VIEW, "state": "calling", "id": "c-2", "direction": "out"}
    assert (status, view) == (200, {**expected, "remote": remote, "started": STARTED})
    assert pr.phone.dialled == [target]
    assert pr.get("/call/status") == (200, view)


@pytest.mark.parametrize("path", ["/call/dial", "/system/debug/call/start"])
def test_dial_while_in_a_call_is_busy(pr: PhoneRig, path: str) -> None:
    pr.phone.ring()
    assert pr.post(path, {"number": "102"}) == (409, {"error": "Busy"})
    assert pr.phone.dialled == []


def test_dial_unregistered_is_refused_but_a_direct_call_goes(pr: PhoneRig) -> None:
    pr.phone.registered = False
    refused = (409, {"error": "SIP is not registered"})
    assert pr.post("/call/dial", {"number": "102"}) == refused
    assert pr.post("/call/dial", {"number": "sip:102@example.com"}) == refused
    assert pr.post("/call/dial", {"number": "sip:10.0.0.7"})[0] == 200


WRONG_NUMBER = (400, {"error": "Wrong number format"})
DIAL_BODY_ERRORS = [
    (b"", "Wrong JSON body"),
    (b"[]", "Wrong JSON body"),
    (b"{", "Wrong JSON body"),
    (b'{"number": "1", "number": "2"}', "Wrong JSON body"),
    (b'{"number": 1e999}', "Wrong JSON body"),
    (b"\xff", "Wrong JSON body"),
    (b"{}", "Wrong JSON body: no value for `number`"),
    (b'{"Number": "102"}', "Wrong JSON body: no value for `number`"),
    (b'{"number": null}', "Wrong JSON body: value `number` was of the wrong type"),
    (b'{"number": 102}', "Wrong JSON body: value `number` was of the wrong type"),
    (b'{"number": ["102"]}', "Wrong JSON body: value `number` was of the wrong type"),
    (b'{"number": ""}', "Wrong number format"),
    (b'{"number": "10 2"}', "Wrong number format"),
    (b'{"number": "sip:door"}', "Wrong number format"),
]


@pytest.mark.parametrize("path", ["/call/dial", "/system/debug/call/start"])
@pytest.mark.parametrize(("raw", "message"), DIAL_BODY_ERRORS)
def test_dial_body_errors_change_nothing(
    pr: PhoneRig, path: str, raw: bytes, message: str
) -> None:
    pr.phone.ring()  # busy: the body is checked before the state
    assert pr.post(path, raw) == (400, {"error": message})
    assert (pr.phone.dialled, pr.phone.current.state) == ([], "ringing")


@pytest.mark.parametrize("path", ["/call/dial", "/call/dtmf", "/device/call/auto_answer"])
def test_a_body_over_64_kib_is_413_before_anything(pr: PhoneRig, path: str) -> None:
    headers = [("Authorization", f"Bearer {pr.token}")]
    padded = b'{"number": "1", "digits": "1", "is_enabled": true}' + b" " * 65537
    assert pr.rig.client.request("POST", V1 + path, padded, headers) == (
        413,
        {"error": "Request body too large"},
    )
    assert (pr.phone.dialled, pr.phone.auto_answer) == ([], [False])


# --- dtmf -------------------------------------------------------------------------------------


def test_dtmf_in_an_active_call(pr: PhoneRig) -> None:
    pr.phone.ring()
    pr.post("/call/answer")
    assert pr.post("/call/dtmf", {"digits": "1#"}) == (200, ACTIVE_VIEW)
    assert pr.post("/call/dtmf", {"digits": "0123456789*#ABCD" * 2}) == (200, ACTIVE_VIEW)
    assert pr.phone.sent_dtmf == ["1#", "0123456789*#ABCD" * 2]


def test_dtmf_without_an_active_call_is_no_call(pr: PhoneRig) -> None:
    assert pr.post("/call/dtmf", {"digits": "1"}) == NO_CALL
    pr.phone.ring()
    assert pr.post("/call/dtmf", {"digits": "1"}) == NO_CALL
    assert pr.phone.sent_dtmf == []


INVALID_DIGITS = "Wrong JSON body: value `digits` is invalid: must be 1 to 32 of 0-9, *, #, A-D"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "Wrong JSON body"),
        (b"{}", "Wrong JSON body: no value for `digits`"),
        (b'{"digits": 1}', "Wrong JSON body: value `digits` was of the wrong type"),
        (b'{"digits": null}', "Wrong JSON body: value `digits` was of the wrong type"),
        (b'{"digits": ""}', INVALID_DIGITS),
        (b'{"digits": "a"}', INVALID_DIGITS),
        (b'{"digits": "E"}', INVALID_DIGITS),
        (b'{"digits": "1 2"}', INVALID_DIGITS),
        (b'{"digits": "1\\n"}', INVALID_DIGITS),
        (b'{"digits": "' + b"1" * 33 + b'"}', INVALID_DIGITS),
    ],
)
def test_dtmf_body_errors_come_before_the_state(pr: PhoneRig, raw: bytes, message: str) -> None:
    pr.phone.ring()
    pr.post("/call/answer")
    assert pr.post("/call/dtmf", raw) == (400, {"error": message})
    assert pr.phone.sent_dtmf == []


# --- the call log -----------------------------------------------------------------------------


def record(n: int, **changes: Any) -> CallRecord:
    values: dict[str, Any] = {
        "id": f"c-{n}",
        "direction": "in",
        "remote": "sip:100@example.com",
        "started": STARTED + n,
        "ended": STARTED + n + 40,
        "end_reason": "remote hangup",
        "answered": STARTED + n + 2,
        "duration": 38,
        "codec": "PCMA",
        "srtp": True,
        "dtmf_received": "1#",
        "rtp": RtpFigures(1900, 1898, 2, 0.4),
        "code": None,
        "reason": None,
    }
    return CallRecord(**{**values, **changes})


RECORD_VIEW = {
    "id": "c-1",
    "direction": "in",
    "remote": "sip:100@example.com",
    "started": STARTED + 1,
    "answered": STARTED + 3,
    "duration": 38,
    "codec": "PCMA",
    "srtp": True,
    "dtmf_received": "1#",
    "rtp": {"sent": 1900, "received": 1898, "lost": 2, "jitter_ms": 0.4},
    "ended": STARTED + 41,
    "end_reason": "remote hangup",
    "code": None,
    "reason": None,
}


def test_history_is_empty_at_first(pr: PhoneRig) -> None:
    assert pr.get("/call/history") == (200, {"calls": []})


def test_history_shows_every_key_newest_first(pr: PhoneRig) -> None:
    busy = record(
        2,
        direction="out",
        remote="sip:102@example.com",
        end_reason="busy",
        answered=None,
        duration=None,
        codec=None,
        srtp=None,
        dtmf_received=None,
        rtp=None,
        code=486,
        reason="Busy Here",
    )
    pr.rig.store.save_call(record(1))
    pr.rig.store.save_call(busy)
    busy_view = {
        **RECORD_VIEW,
        "id": "c-2",
        "direction": "out",
        "remote": "sip:102@example.com",
        "started": STARTED + 2,
        "answered": None,
        "duration": None,
        "codec": None,
        "srtp": None,
        "dtmf_received": None,
        "rtp": None,
        "ended": STARTED + 42,
        "end_reason": "busy",
        "code": 486,
        "reason": "Busy Here",
    }
    assert pr.get("/call/history") == (200, {"calls": [busy_view, RECORD_VIEW]})
    assert pr.get("/call/history", query="limit=1") == (200, {"calls": [busy_view]})
    assert pr.rig.client.get("/api/v0/call/history", pr.token, query="limit=2&x=y") == (
        200,
        {"calls": [busy_view, RECORD_VIEW]},
    )


def test_history_limit_default_and_bounds(pr: PhoneRig) -> None:
    for n in range(60):
        pr.rig.store.save_call(record(n))
    assert len(pr.get("/call/history")[1]["calls"]) == 50
    assert len(pr.get("/call/history", query="limit=1000")[1]["calls"]) == 60
    newest = pr.get("/call/history", query="limit=3")[1]["calls"]
    assert [call["id"] for call in newest] == ["c-59", "c-58", "c-57"]


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1001",
        "limit=-1",
        "limit=+1",
        "limit=01",
        "limit=1.0",
        "limit=1e2",
        "limit=",
        "limit",
        "limit=%201",
        "limit=1%20",
        "limit=ten",
        "limit=99999999999999999999",
        "limit=1&limit=2",
        "&".join(f"f{i}=1" for i in range(17)) + "&limit=1",
    ],
)
def test_history_wrong_limit(pr: PhoneRig, query: str) -> None:
    assert pr.get("/call/history", query=query) == (400, {"error": "Wrong limit"})


def test_history_store_failure_is_503(pr: PhoneRig) -> None:
    pr.rig.store.close()  # every read now fails
    assert pr.get("/call/history") == (503, {"error": "Call log could not be read"})


# --- auto-answer ------------------------------------------------------------------------------

AUTO = "/device/call/auto_answer"


def test_auto_answer_factory_off_and_told_to_the_phone(pr: PhoneRig) -> None:
    assert pr.get(AUTO) == (200, {"is_enabled": False})
    assert pr.phone.auto_answer == [False]  # at start, from the store


@pytest.mark.parametrize("prefix", ["/api/v1", "/api/v0"])
def test_auto_answer_set_and_read(pr: PhoneRig, prefix: str) -> None:
    client = pr.rig.client
    on = {"is_enabled": True, "other": "ignored"}
    assert client.post(prefix + AUTO, on, pr.token) == (200, {"is_enabled": True})
    assert client.get(prefix + AUTO, pr.token) == (200, {"is_enabled": True})
    assert pr.rig.store.load_auto_answer() is True
    assert client.post(prefix + AUTO, {"is_enabled": False}, pr.token) == (
        200,
        {"is_enabled": False},
    )
    assert pr.rig.store.load_auto_answer() is False
    assert pr.phone.auto_answer == [False, True, False]


def test_auto_answer_survives_a_restart(tmp_path: Path) -> None:
    first = make_rig(tmp_path / "data", phone=FakePhone())
    assert first.client.post(V1 + AUTO, {"is_enabled": True}, first.login())[0] == 200
    first.client.close()
    first.store.close()
    phone = FakePhone()
    second = make_rig(tmp_path / "data", phone=phone)
    try:
        assert second.client.get(V1 + AUTO, second.login()) == (200, {"is_enabled": True})
        assert phone.auto_answer == [True]  # the phone learns it at start
    finally:
        second.client.close()
        second.store.close()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "Wrong JSON body"),
        (b"true", "Wrong JSON body"),
        (b'{"is_enabled": true, "is_enabled": true}', "Wrong JSON body"),
        (b"{}", "Wrong JSON body: no value for `is_enabled`"),
        (b'{"sip_enable": true}', "Wrong JSON body: no value for `is_enabled`"),
        (b'{"is_enabled": 1}', "Wrong JSON body: value `is_enabled` was of the wrong type"),
        (b'{"is_enabled": "true"}', "Wrong JSON body: value `is_enabled` was of the wrong type"),
        (b'{"is_enabled": null}', "Wrong JSON body: value `is_enabled` was of the wrong type"),
    ],
)
def test_auto_answer_body_errors_change_nothing(pr: PhoneRig, raw: bytes, message: str) -> None:
    assert pr.post(AUTO, raw) == (400, {"error": message})
    assert pr.get(AUTO) == (200, {"is_enabled": False})
    assert (pr.rig.store.load_auto_answer(), pr.phone.auto_answer) == (False, [False])


def test_auto_answer_store_failure_is_503_and_changes_nothing(pr: PhoneRig) -> None:
    pr.rig.store.close()  # every commit now fails
    assert pr.post(AUTO, {"is_enabled": True}) == (
        503,
        {"error": "Settings could not be stored"},
    )
    assert pr.get(AUTO) == (200, {"is_enabled": False})
    assert pr.phone.auto_answer == [False]


# --- no phone plugged in: what the served service answers today -------------------------------


def test_without_a_phone_the_routes_still_answer(rig: Rig) -> None:
    token = rig.login()
    client = rig.client
    assert client.get(V1 + "/call/status", token) == (200, IDLE_VIEW)
    assert client.post(V1 + "/call/dial", {"number": "102"}, token) == (
        409,
        {"error": "SIP is not registered"},
    )
    assert client.post(V1 + "/call/answer", b"", token) == NO_CALL
    assert client.post(V1 + "/call/hangup", b"", token) == NO_CALL
    assert client.post(V1 + "/call/dtmf", {"digits": "1"}, token) == NO_CALL
    assert client.get(V1 + "/call/history", token) == (200, {"calls": []})
    assert client.post(V1 + AUTO, {"is_enabled": True}, token) == (200, {"is_enabled": True})


def test_the_status_keys_come_in_the_contracts_order(pr: PhoneRig) -> None:
    pr.phone.ring()
    pr.post("/call/answer")
    assert list(pr.get("/call/status")[1]) == list(ACTIVE_VIEW)
