"""Contract §1, §2, §4: routes, auth, hosts, limits, through the ASGI app over a real store."""

import json
from typing import Any

import pytest

from intercom_sip import errors
from intercom_sip.admin import credentials as auth
from intercom_sip.api.endpoints import ENDPOINTS
from intercom_sip.contract.fields import FACTORY
from intercom_sip.contract.settings import to_view
from intercom_sip.store import Store, StoreError
from tests.conftest import FACTORY_MD5, Rig
from tests.test_validation import BASE

SETTINGS = "/api/v1/device/sip/settings"
LOG_IN = (401, {"error": "Log In"})
FACTORY_VIEW = to_view(FACTORY)


def login(rig: Rig, password: str = FACTORY_MD5, username: str = "admin") -> tuple[int, Any]:
    return rig.client.get("/api/v1/login", query=f"username={username}&password={password}")


# --- routes ---------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/api/v1", "/api/v0"])
def test_both_prefixes_serve_the_settings(rig: Rig, prefix: str) -> None:
    token = rig.login()
    assert rig.client.get(f"{prefix}/device/sip/settings", token) == (200, FACTORY_VIEW)
    status, view = rig.client.post(f"{prefix}/device/sip/settings", BASE, token)
    assert status == 200
    assert rig.client.get("/api/v1/device/sip/settings", token) == (200, view)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v2/device/sip/settings",
        "/api/v1/device/sip/settings/",
        "/api",
        "/nope",
        "/api/v1/device/sip",
        "/API/v1/device/sip/settings",
        "/api/info/",
    ],
)
def test_unknown_paths(rig: Rig, path: str) -> None:
    token = rig.login()
    assert rig.client.get(path, token) == (404, {"error": "Not found"})
    assert rig.client.get(path) == (404, {"error": "Not found"})


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", SETTINGS),
        ("PUT", SETTINGS),
        ("POST", "/api/v1/sip/status"),
        ("POST", "/api/v1/logout"),
    ],
)
def test_other_methods_after_auth(rig: Rig, method: str, path: str) -> None:
    token = rig.login()
    headers = [("Authorization", f"Bearer {token}")]
    assert rig.client.request(method, path, headers=headers) == (
        405,
        {"error": "Method not allowed"},
    )
    assert rig.client.request(method, path) == LOG_IN  # auth is checked first


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/v1/login"), ("PUT", "/api/info"), ("POST", "/api/openapi.json")],
)
def test_other_methods_on_open_routes(rig: Rig, method: str, path: str) -> None:
    assert rig.client.request(method, path) == (405, {"error": "Method not allowed"})


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/api/info", b"GET, HEAD"),
        ("DELETE", SETTINGS, b"GET, HEAD, POST"),
        ("POST", "/api/v0/sip/status", b"GET, HEAD"),
    ],
)
def test_405_says_which_methods_are_allowed(
    rig: Rig, method: str, path: str, allow: bytes
) -> None:
    headers = [("Authorization", f"Bearer {rig.login()}")]
    assert rig.client.request(method, path, headers=headers)[0] == 405
    assert (b"allow", allow) in rig.client.last_headers


@pytest.mark.parametrize("path", [SETTINGS, "/api/info", "/api/v1/sip/status"])
def test_head_is_answered_as_get(rig: Rig, path: str) -> None:
    """RFC 9110 §9.3.2; the server drops the body (tests/api/test_conformance.py)."""
    headers = [("Authorization", f"Bearer {rig.login()}")]
    got = rig.client.request("GET", path, headers=headers)
    got_headers = rig.client.last_headers
    assert rig.client.request("HEAD", path, headers=headers) == got
    assert rig.client.last_headers == got_headers


def test_two_host_headers_are_refused(rig: Rig) -> None:
    assert rig.client.request("GET", "/api/info", headers=[("Host", "127.0.0.1")]) == (
        400,
        {"error": "Bad request"},
    )


def test_info(rig: Rig) -> None:
    serial = rig.store.made_once("serial_number", "not made here")
    assert rig.client.get("/api/info") == (
        200,
        {
            "device_name": "intercom-sip",
            "device_model": "intercom-sip/0.1.0",
            "device_type": "monitor",
            "firmware_version": "0.1.0",
            "framework_version": "0.1.0",
            "frontend_version": "0.1.0",
            "api_version": "1.7.0",
            "device_serial_number": serial,
            "hybrid_enable": False,
            "hybrid_version": None,
            "commit": "v0.1.0",
        },
    )


# --- authentication -------------------------------------------------------------------


@pytest.mark.parametrize("md5", [FACTORY_MD5, FACTORY_MD5.upper()])
def test_login_either_case(rig: Rig, md5: str) -> None:
    status, answer = login(rig, md5)
    assert status == 200
    assert set(answer) == {"token", "account_type"}
    assert answer["account_type"] == "admin"
    assert len(answer["token"]) == 40
    assert answer["token"] == answer["token"].lower()
    int(answer["token"], 16)


@pytest.mark.parametrize(
    "query",
    ["", "username=admin", f"password={FACTORY_MD5}", "user=admin&pass=x", "%zz", "&&&"],
)
def test_login_params_missed(rig: Rig, query: str) -> None:
    assert rig.client.get("/api/v1/login", query=query) == (
        400,
        {"error": "Required parameters missed"},
    )


@pytest.mark.parametrize(
    "query",
    [
        "username=admin&password=",
        "username=&password=" + FACTORY_MD5,
        "username=Admin&password=" + FACTORY_MD5,
        "username=admin&password=123456",
        "username=admin&password=" + auth.md5_hex("1234567"),
        "username=admin&password=%ff%fe",
        "username&password",
    ],
)
def test_login_wrong_pair(rig: Rig, query: str) -> None:
    assert rig.client.get("/api/v1/login", query=query) == (
        400,
        {"error": "Wrong login or password"},
    )


def test_login_throttle(rig: Rig) -> None:
    for n in range(5):
        assert login(rig, auth.md5_hex(f"guess{n}")) == (400, {"error": "Wrong login or password"})
    wrong = auth.md5_hex("guess0")
    throttled = (429, {"error": "Too many login attempts"})
    assert login(rig) == throttled  # a right pair included
    assert login(rig, wrong) == throttled  # a 429 is no failure
    assert rig.client.get("/api/v1/login", query="username=admin") == (
        400,
        {"error": "Required parameters missed"},
    )
    other = rig.client.__class__(rig.client.app, client="127.0.0.2")
    try:
        assert other.get("/api/v1/login", query=f"username=admin&password={FACTORY_MD5}")[0] == 200
    finally:
        other.runner.close()
    rig.clock.now += 59.9
    assert login(rig) == throttled
    rig.clock.now += 0.2  # the first failure leaves the window
    assert login(rig)[0] == 200


def test_success_does_not_reset_the_count(rig: Rig) -> None:
    for n in range(4):
        login(rig, auth.md5_hex(f"guess{n}"))
    assert login(rig)[0] == 200
    login(rig, auth.md5_hex("guess4"))
    assert login(rig) == (429, {"error": "Too many login attempts"})


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Bearer",
        "Bearer ",
        "Basic YWRtaW46MTIzNDU2",
        "Token {t}",
        "Bearer {t} x",
        "Bearer  {t}",
        "{t}",
        "Bearer {t}x",
        "Bearer \u00e9\u00e9",
    ],
)
def test_bad_authorization(rig: Rig, value: str) -> None:
    token = rig.login()
    headers = [("Authorization", value.format(t=token))]
    assert rig.client.request("GET", SETTINGS, headers=headers) == LOG_IN


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_scheme_in_any_case(rig: Rig, scheme: str) -> None:
    token = rig.login()
    headers = [("Authorization", f"{scheme} {token}")]
    assert rig.client.request("GET", SETTINGS, headers=headers)[0] == 200


def test_two_authorization_headers_are_refused(rig: Rig) -> None:
    token = rig.login()
    headers = [("Authorization", f"Bearer {token}")] * 2
    assert rig.client.request("GET", SETTINGS, headers=headers) == LOG_IN


def test_token_lives_two_hours_from_issue(rig: Rig) -> None:
    token = rig.login()
    rig.clock.now += 7199
    assert rig.client.get(SETTINGS, token)[0] == 200  # use does not extend it
    rig.clock.now += 1
    assert rig.client.get(SETTINGS, token) == LOG_IN


def test_logout_ends_only_that_token(rig: Rig) -> None:
    first, second = rig.login(), rig.login()
    assert rig.client.get("/api/v1/logout", first) == (200, {})
    assert rig.client.get(SETTINGS, first) == LOG_IN
    assert rig.client.get("/api/v1/logout", first) == LOG_IN
    assert rig.client.get(SETTINGS, second)[0] == 200


def test_password_change_ends_every_token(rig: Rig) -> None:
    token = rig.login()
    other = Store.open(rig.data_dir)  # as `intercom-sip passwd` does
    other.save_credential(auth.make_credential(auth.md5_hex("n3w-pass"), b"s" * 16), 0.0)
    other.close()
    assert rig.client.get(SETTINGS, token) == LOG_IN
    assert login(rig)[0] == 400
    assert login(rig, auth.md5_hex("n3w-pass").upper())[0] == 200


def test_settings_change_keeps_tokens(rig: Rig) -> None:
    token = rig.login()
    assert rig.client.post(SETTINGS, BASE, token)[0] == 200
    assert rig.client.get(SETTINGS, token)[0] == 200


# --- hosts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.0.0.1:8080",
        "localhost",
        "LOCALHOST:1",
        "[::1]:8080",
        "[::1]",
        "intercom.example",
        "intercom.example:80",
    ],
)
def test_hosts_answered(rig: Rig, host: str) -> None:
    assert rig.client.request("GET", "/api/info", host=host)[0] == 200


@pytest.mark.parametrize(
    "host",
    [
        None,
        "",
        "evil.example",
        "127.0.0.1.evil.example",
        "127.0.0.2",
        "localhost.",
        "[::2]",
        "intercom.example.evil",
        "\u00e9",
        "localhost:evil",
        "localhost:",
        "127.0.0.1:123456",
        "127.0.0.1:-1",
        "[::1]:http",
        "[::1]x",
        "localhost:\u0661",
    ],
)
def test_foreign_hosts_misdirected(rig: Rig, host: str | None) -> None:
    token = rig.login()
    misdirected = (421, {"error": "Misdirected request"})
    assert rig.client.request("GET", "/api/info", host=host) == misdirected
    assert rig.client.request("GET", SETTINGS, host=host) == misdirected
    headers = [("Authorization", f"Bearer {token}")]
    assert (
        rig.client.request("POST", SETTINGS, json.dumps(BASE).encode(), headers, host=host)
        == misdirected
    )
    assert rig.store.load_settings() is None


# --- the body -------------------------------------------------------------------------


def test_body_limit(rig: Rig) -> None:
    token = rig.login()
    headers = [("Authorization", f"Bearer {token}")]
    too_large = (413, {"error": "Request body too large"})
    assert rig.client.request("POST", SETTINGS, b" " * 65537, headers) == too_large
    assert rig.client.request("POST", SETTINGS, b" " * 65537, headers, chunks=7) == too_large
    declared = [*headers, ("Content-Length", "70000")]
    assert rig.client.request("POST", SETTINGS, b"{}", declared) == too_large
    padded = json.dumps(BASE).encode()
    padded += b" " * (65536 - len(padded))
    assert rig.client.request("POST", SETTINGS, padded, headers, chunks=5)[0] == 200
    assert rig.client.request("POST", SETTINGS, b" " * 65537) == LOG_IN  # auth first


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "text/plain", "application/x-www-form-urlencoded", "nonsense"],
)
def test_content_type_is_not_looked_at(rig: Rig, content_type: str) -> None:
    token = rig.login()
    headers = [("Authorization", f"Bearer {token}"), ("Content-Type", content_type)]
    assert rig.client.request("POST", SETTINGS, json.dumps(BASE).encode(), headers)[0] == 200


@pytest.mark.parametrize("raw", [b"", b"\xff\xfe{}", b"not json", b"[1]", b'{"a":1,"a":1}'])
def test_wrong_json_body(rig: Rig, raw: bytes) -> None:
    token = rig.login()
    assert rig.client.post(SETTINGS, raw, token) == (400, {"error": "Wrong JSON body"})
    assert rig.store.load_settings() is None


def test_unknown_keys_are_ignored(rig: Rig) -> None:
    token = rig.login()
    body = {**BASE, "host_to_id": {"a": [1, 2]}, "user_agent": "x", "net": None, "multicast": 1}
    status, view = rig.client.post(SETTINGS, body, token)
    assert status == 200
    assert view["user_agent"] == "intercom-sip/0.1.0"


# --- settings -------------------------------------------------------------------------


def test_post_answers_the_stored_settings_and_records_history(rig: Rig) -> None:
    token = rig.login()
    status, view = rig.client.post(SETTINGS, BASE, token)
    expected = {**BASE, "password": "WebPass", "user_agent": "intercom-sip/0.1.0"}
    assert (status, view) == (200, expected)
    assert rig.client.get(SETTINGS, token) == (200, expected)
    reopened = Store.open(rig.data_dir)
    stored = reopened.load_settings()
    assert stored is not None
    assert stored.password == "secret1"
    [entry] = reopened.history()
    assert (entry.at, entry.actor, entry.settings, entry.password_changed) == (
        1000.0,
        "admin@127.0.0.1",
        expected,
        True,
    )
    assert "secret1" not in json.dumps(entry.settings)


def test_posting_back_what_get_returns(rig: Rig) -> None:
    token = rig.login()
    _, view = rig.client.post(SETTINGS, BASE, token)
    view["timeout"] = 1800
    status, again = rig.client.post(SETTINGS, view, token)
    assert (status, again) == (200, view)
    stored = rig.store.load_settings()
    assert stored is not None
    assert stored.password == "secret1"
    assert [e.password_changed for e in rig.store.history()] == [False, True]


def test_same_settings_twice_records_one_change(rig: Rig) -> None:
    token = rig.login()
    assert rig.client.post(SETTINGS, BASE, token)[0] == 200
    assert rig.client.post(SETTINGS, BASE, token)[0] == 200
    assert len(rig.store.history()) == 1


def test_factory_settings_post_back(rig: Rig) -> None:
    token = rig.login()
    assert rig.client.post(SETTINGS, FACTORY_VIEW, token) == (200, FACTORY_VIEW)


def test_storage_failure_changes_nothing(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    token = rig.login()

    def broken(*args: object) -> None:
        raise StoreError("disk I/O error")

    monkeypatch.setattr(rig.store, "save_changes", broken)
    assert rig.client.post(SETTINGS, BASE, token) == (
        503,
        {"error": "Settings could not be stored"},
    )
    assert rig.client.get(SETTINGS, token) == (200, FACTORY_VIEW)


def test_a_bug_answers_json_and_serving_goes_on(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    token = rig.login()

    def broken(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(rig.store, "save_changes", broken)
    assert rig.client.post(SETTINGS, BASE, token) == (500, {"error": "Internal error"})
    assert rig.client.get(SETTINGS, token) == (200, FACTORY_VIEW)


# --- status ---------------------------------------------------------------------------


def test_status_follows_the_stored_settings(rig: Rig) -> None:
    token = rig.login()
    status, view = rig.client.get("/api/v1/sip/status", token)
    assert (status, view["sip_status"]) == (200, "OFFLINE")
    rig.client.post(SETTINGS, BASE, token)
    assert rig.client.get("/api/v1/sip/status", token) == (
        200,
        {
            "sip_status": "ERROR",
            "register_last_attempt": None,
            "state": "failed",
            "code": None,
            "reason": "SIP agent not running",
            "expires": None,
            "next_refresh": None,
            "contact": None,
            "public_address": None,
            "transport": None,
        },
    )


# --- the OpenAPI document agrees with the routes -----------------------------------------


def test_openapi_describes_every_route_and_only_those(rig: Rig) -> None:
    status, document = rig.client.get("/api/openapi.json")
    assert status == 200
    assert document["openapi"] == "3.1.0"
    token = rig.login()
    served = {(e.method, p) for e in ENDPOINTS for p in e.full_paths()}
    documented = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    assert documented == served
    for method, path in documented:
        status, _ = rig.client.request(
            method, path, headers=[("Authorization", f"Bearer {token}")]
        )
        assert status not in (404, 405), (method, path)


def test_openapi_settings_schema_matches_get(rig: Rig) -> None:
    _, document = rig.client.get("/api/openapi.json")
    schemas = document["components"]["schemas"]
    assert list(schemas["SipSettingsView"]["properties"]) == list(FACTORY_VIEW)
    request = schemas["SipSettings"]
    assert request["required"] == [
        "enable",
        "proxy",
        "realm",
        "user",
        "password",
        "timeout",
        "stun",
    ]
    assert request["properties"]["timeout"]["enum"] == [120, 300, 600, 1200, 1800]
    assert request["properties"]["stun"]["required"] == ["ip", "port"]
    token = rig.login()
    _, status_view = rig.client.get("/api/v1/sip/status", token)
    assert list(schemas["SipStatus"]["properties"]) == list(status_view)


def test_openapi_lists_each_status_a_route_answers(rig: Rig) -> None:
    _, document = rig.client.get("/api/openapi.json")
    post = document["paths"][SETTINGS]["post"]
    server = ["421", "431", "500"]  # any request, from the server itself
    assert sorted(post["responses"]) == ["200", "400", "401", "413", *server, "503"]
    assert sorted(document["paths"]["/api/v0/login"]["get"]["responses"]) == [
        "200",
        "400",
        *server[:1],
        "429",
        *server[1:],
    ]
    assert post["responses"]["401"] == {"$ref": "#/components/responses/LogIn"}
    log_in = document["components"]["responses"]["LogIn"]
    assert log_in["content"]["application/json"]["schema"]["properties"] == {
        "error": {"const": errors.LOG_IN}
    }
