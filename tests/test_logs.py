"""Secrets never reach the log, even at debug level."""

from pathlib import Path

import pytest

from intercom_sip.admin import credentials as auth
from tests.served import Served
from tests.test_validation import BASE

pytestmark = pytest.mark.served


def test_no_secret_in_the_log(tmp_path: Path) -> None:
    service = Served(tmp_path / "data", "--log-level", "debug").start()
    try:
        token = service.login()
        service.call("GET", f"/api/v1/login?username=admin&password={auth.md5_hex('guess1')}")
        service.call("POST", "/api/v1/device/sip/settings", token, {**BASE, "timeout": 1})
        service.call("POST", "/api/v1/device/sip/settings", token, BASE)
        service.call("GET", "/api/v1/device/sip/settings", token)
        service.call("GET", "/api/v1/sip/status", token)
        service.call("GET", "/api/v1/logout", token)
        service.call("GET", "/api/v1/device/sip/settings", token)
    finally:
        assert service.stop() == 0
    log = service.log
    for secret in (token, auth.md5_hex("123456"), auth.md5_hex("guess1"), "secret1"):
        assert secret not in log
        assert secret.upper() not in log
    access = [line for line in log.splitlines() if "intercom_sip.access" in line]
    assert len(access) == 8
    assert all("?" not in line for line in access)
    assert '"GET /api/v1/login" 200' in access[0]
    assert '"GET /api/v1/login" 400' in access[1]
    assert "settings changed by admin@127.0.0.1: Settings(enable=True" in log
