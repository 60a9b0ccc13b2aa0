"""A failing or waiting SIP agent sleeps: no busy loop while it retries or waits."""

import os
import time
from pathlib import Path

import pytest

from tests.served import Served, wait_for
from tests.test_validation import BASE

pytestmark = pytest.mark.served


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize(
    ("proxy", "reason"),
    [("sip:nothing.invalid", "DNS failure"), ("127.0.0.1:9", None)],
    ids=["dns-failure", "no-answer"],
)
def test_the_agent_sleeps_between_attempts(tmp_path: Path, proxy: str, reason: str | None) -> None:
    service = Served(tmp_path / "data").start()
    try:
        token = service.login()
        assert (
            service.call("POST", "/api/v1/device/sip/settings", token, {**BASE, "proxy": proxy})[0]
            == 200
        )

        def attempted() -> bool:
            status = service.call("GET", "/api/v1/sip/status", token)[1]
            return status["register_last_attempt"] is not None and (
                reason is None or status["reason"] == reason
            )

        wait_for(attempted)
        assert service.process is not None
        before = cpu_seconds(service.process.pid)
        time.sleep(2.0)  # a REGISTER in flight (no answer) or a retry waiting (DNS)
        assert cpu_seconds(service.process.pid) - before < 0.2
    finally:
        service.stop()
