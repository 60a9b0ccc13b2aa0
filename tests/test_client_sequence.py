"""A client written for the vendor's device works unchanged (a separate process)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.served import Served

pytestmark = pytest.mark.served
CLIENT = Path(__file__).parent / "clients" / "vendor_client.py"


def test_documented_client_sequence(served: Served) -> None:
    done = subprocess.run(
        [sys.executable, str(CLIENT), served.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    steps = {
        name: (status, answer)
        for name, status, answer in map(json.loads, done.stdout.splitlines())
    }
    assert list(steps) == [
        "login-lower",
        "login-upper",
        "post",
        "get",
        "post-back",
        "status",
        "logout",
        "after-logout",
    ]
    for name in ("login-lower", "login-upper"):
        status, answer = steps[name]
        assert status == 200
        assert answer["account_type"] == "admin"
    view = {
        "enable": True,
        "proxy": "sip:sip.bas-ip.com",
        "realm": "sip.bas-ip.com",
        "user": "7001",
        "password": "WebPass",
        "transport": "udp",
        "user_id": "",
        "is_enable_ring_code": False,
        "timeout": 300,
        "registration_interval": 120,
        "stun": {"ip": "stun.bas-ip.com", "port": 3478},
        "user_agent": "intercom-sip/0.1.0",
    }
    assert steps["post"] == (200, view)
    assert steps["get"] == (200, view)
    assert steps["post-back"] == (200, {**view, "timeout": 600})
    assert steps["status"][0] == 200
    assert steps["status"][1]["sip_status"] == "ERROR"
    assert steps["logout"] == (200, {})
    assert steps["after-logout"] == (401, {"error": "Log In"})
    # the password was kept through the post-back, and never shown
    from intercom_sip.store import Store

    stored = Store.open(served.data_dir).load_settings()
    assert stored is not None
    assert (stored.password, stored.timeout) == ("SecretPass1", 600)
    assert "SecretPass1" not in done.stdout
