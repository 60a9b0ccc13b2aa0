"""The page's files (contract §1) with the headers that keep it to itself, and the
settings history route (ours)."""

import re

from intercom_sip.api.page import CSP
from tests.conftest import Rig

SETTINGS = {
    "enable": True,
    "proxy": "sip.example.com",
    "realm": "example.com",
    "user": "101",
    "password": "s3cret-pass",
    "timeout": 120,
    "stun": {"ip": "", "port": 3478},
}


def test_the_page_and_its_files_are_served_with_a_strict_policy(rig: Rig) -> None:
    for path, media in (
        ("/", "text/html"),
        ("/app.css", "text/css"),
        ("/app.js", "text/javascript"),
        ("/md5.js", "text/javascript"),
    ):
        status, text = rig.client.get(path)
        assert status == 200 and text
        headers = dict(rig.client.last_headers)
        assert headers[b"content-type"] == f"{media}; charset=utf-8".encode()
        assert headers[b"content-security-policy"] == CSP.encode()
        assert headers[b"x-content-type-options"] == b"nosniff"
    assert "frame-ancestors 'none'" in CSP
    assert "script-src 'self';" in CSP and "style-src 'self';" in CSP  # nothing inline


def test_the_page_has_no_inline_script_or_style(rig: Rig) -> None:
    _, html = rig.client.get("/")
    assert re.findall(r"<script[^>]*>", html) == [
        '<script src="/md5.js" defer>',
        '<script src="/app.js" defer>',
    ]
    assert "<style" not in html and " style=" not in html and " on" + "click=" not in html
    assert "http://" not in html and "https://" not in html  # nothing from elsewhere


def test_every_input_of_the_page_has_its_label(rig: Rig) -> None:
    _, html = rig.client.get("/")
    ids = re.findall(r'<(?:input|select)[^>]*\bid="([^"]+)"', html)
    labelled = set(re.findall(r'<label for="([^"]+)"', html))
    assert ids and set(ids) <= labelled


def test_the_settings_history_newest_first(rig: Rig) -> None:
    token = rig.login()
    assert rig.client.get("/api/v1/device/sip/settings/history", token) == (200, {"changes": []})
    assert rig.client.post("/api/v1/device/sip/settings", SETTINGS, token)[0] == 200
    changed = {**SETTINGS, "password": "WebPass", "timeout": 300}
    _, view = rig.client.post("/api/v1/device/sip/settings", changed, token)
    status, history = rig.client.get("/api/v1/device/sip/settings/history", token)
    assert status == 200
    assert [(c["settings"]["timeout"], c["password_changed"]) for c in history["changes"]] == [
        (300, False),
        (120, True),
    ]
    assert history["changes"][0] == {
        "at": rig.clock.now,
        "actor": "admin@127.0.0.1",
        "settings": view,
        "password_changed": False,
    }
    _, one = rig.client.get("/api/v1/device/sip/settings/history", token, query="limit=1")
    assert one == {"changes": history["changes"][:1]}
    for bad in ("limit=0", "limit=1001", "limit=x", "limit=1&limit=2"):
        assert rig.client.get("/api/v1/device/sip/settings/history", token, query=bad) == (
            400,
            {"error": "Wrong limit"},
        )
    assert rig.client.get("/api/v1/device/sip/settings/history")[0] == 401


def test_events_need_a_token_under_both_prefixes(rig: Rig) -> None:
    assert rig.client.get("/api/v1/events") == (401, {"error": "Log In"})
    assert rig.client.get("/api/v0/events") == (401, {"error": "Log In"})
