"""The agent's pure reconcile step, and its supervisor restarting after a bug."""

import asyncio
import socket
from dataclasses import replace
from typing import Any, ClassVar

import pytest

from intercom_sip import agent
from intercom_sip.agent import Agent, AgentOptions, Step, plan
from intercom_sip.fields import FACTORY
from intercom_sip.settings import Settings

ON = replace(
    FACTORY,
    enable=True,
    proxy="127.0.0.1:5060",
    realm="example.com",
    user="101",
    password="secret1",
)


@pytest.mark.parametrize(
    ("applied", "desired", "running", "step"),
    [
        (None, FACTORY, False, Step.NOTHING),
        (None, ON, False, Step.START),
        (FACTORY, ON, False, Step.START),
        (ON, ON, True, Step.NOTHING),
        (ON, replace(ON, timeout=600), True, Step.NOTHING),
        (ON, replace(ON, is_enable_ring_code=True), True, Step.NOTHING),
        (ON, replace(ON, password="other12"), True, Step.UPDATE),
        (ON, replace(ON, user_id="auth1"), True, Step.UPDATE),
        (ON, replace(ON, registration_interval=90), True, Step.UPDATE),
        (ON, replace(ON, proxy="127.0.0.2"), True, Step.REPLACE),
        (ON, replace(ON, realm="other.example"), True, Step.REPLACE),
        (ON, replace(ON, user="102"), True, Step.REPLACE),
        (ON, replace(ON, transport="tcp"), True, Step.REPLACE),
        (ON, replace(ON, stun_ip="stun.example.com"), True, Step.REPLACE),
        (ON, replace(ON, enable=False), True, Step.STOP),
        (ON, replace(ON, enable=False), False, Step.NOTHING),
        (ON, ON, False, Step.START),  # a binding lost to a bug is made again
    ],
)
def test_plan(applied: Settings | None, desired: Settings, running: bool, step: Step) -> None:
    assert plan(applied, desired, running) is step


class ExplodingBinding:
    """Fails to start the first time, as a bug would; then behaves."""

    made: ClassVar[list["ExplodingBinding"]] = []

    def __init__(self, *args: Any) -> None:
        self.call_id = "x"
        ExplodingBinding.made.append(self)

    def start(self, crashed: Any) -> None:
        if len(ExplodingBinding.made) == 1:
            raise RuntimeError("bug")

    async def stop(self, within: float) -> None:
        pass

    def abandon(self) -> None:
        pass


def test_supervisor_starts_again_from_the_desired_settings(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(agent, "Binding", ExplodingBinding)
    monkeypatch.setattr(agent, "RESTART_PAUSE", 0.01)

    async def scenario() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sip = Agent(AgentOptions(instance="urn:uuid:x", user_agent="test"))
        await sip.start(sock)
        sip.apply(ON)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(ExplodingBinding.made) == 2:
                break
        await sip.stop()

    asyncio.run(scenario())
    assert len(ExplodingBinding.made) == 2
    assert "SIP agent failed; starting again from the stored settings" in caplog.text
