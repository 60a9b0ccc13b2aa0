"""The agent's pure reconcile step, and its supervisor restarting after a bug."""

import asyncio
import itertools
import socket
from dataclasses import replace
from typing import Any, ClassVar

import pytest

from intercom_sip.agent import supervisor as agent
from intercom_sip.agent.status import Status
from intercom_sip.agent.supervisor import Agent, AgentOptions, Step, plan
from intercom_sip.contract.fields import FACTORY
from intercom_sip.contract.settings import Settings

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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.call_id = "x"
        ExplodingBinding.made.append(self)

    def status(self) -> Status:
        return Status("registering")

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
    monkeypatch.setattr(agent, "Registrant", ExplodingBinding)

    async def scenario() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sip = Agent(AgentOptions(instance="urn:uuid:x", user_agent="test", restart_pause=0.01))
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


@pytest.mark.parametrize(
    ("crashes_at", "pauses"),
    [
        ([0.0], [1.0]),
        ([0.0, 1.0, 3.0, 7.0, 15.0], [1.0, 2.0, 4.0, 8.0, 16.0]),
        ([0, 1, 3, 7, 15, 31, 63, 123, 183], [1, 2, 4, 8, 16, 32, 60, 60, 60]),
        ([0.0, 1.0, 10.0], [1.0, 2.0, 1.0]),  # ran 7 s after a 2 s pause: calm again
        ([0.0, 1.0, 3.0, 7.0, 8.0], [1.0, 2.0, 4.0, 8.0, 16.0]),  # crashed during a pause
    ],
)
def test_restarts_back_off_and_are_forgotten_when_calm(
    crashes_at: list[float], pauses: list[float]
) -> None:
    restarts = agent.Restarts()
    assert [restarts.pause(now) for now in crashes_at] == pauses


def test_a_restart_the_loop_made_late_is_no_calm() -> None:
    """Counted from when the binding really started again: a busy loop that starts it 4 s
    late does not make its crash at once look like a calm run (the pauses still grow)."""
    restarts = agent.Restarts()
    assert restarts.pause(0.0) == 1.0
    restarts.resumed(5.0)  # due at 1.0
    assert restarts.pause(5.1) == 2.0  # counted from 1.0 it would be calm: 1.0 again
    restarts.resumed(7.1)
    assert restarts.pause(10.2) == 1.0  # ran 3.1 s, more than its 2 s pause and the first


def test_the_first_crash_after_a_start_pauses_the_first_pause() -> None:
    """Started (not restarted) and crashed at once: no pause before it to double."""
    restarts = agent.Restarts()
    restarts.resumed(0.0)
    assert restarts.pause(0.01) == 1.0


class CrashingBinding:
    """A binding whose task dies of a bug each time it starts; `started` holds the loop
    times of its starts, and `fourth` is set at the fourth."""

    made: ClassVar[list["CrashingBinding"]] = []
    started: ClassVar[list[float]] = []
    fourth: ClassVar[asyncio.Event | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.call_id = "x"
        CrashingBinding.made.append(self)

    def status(self) -> Status:
        return Status("registering")

    def start(self, crashed: Any) -> None:
        loop = asyncio.get_running_loop()
        CrashingBinding.started.append(loop.time())
        if len(CrashingBinding.started) == 4 and CrashingBinding.fourth is not None:
            CrashingBinding.fourth.set()
        loop.call_soon(crashed, self)

    async def stop(self, within: float) -> None:
        pass

    def abandon(self) -> None:
        pass


def test_a_binding_that_keeps_crashing_is_restarted_with_growing_pauses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(agent, "Registrant", CrashingBinding)
    monkeypatch.setattr(CrashingBinding, "made", [])
    monkeypatch.setattr(CrashingBinding, "started", [])

    async def scenario() -> None:
        CrashingBinding.fourth = asyncio.Event()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sip = Agent(AgentOptions(instance="urn:uuid:x", user_agent="test", restart_pause=0.1))
        await sip.start(sock)
        sip.apply(ON)
        await asyncio.wait_for(CrashingBinding.fourth.wait(), 20)  # 0.7 s unloaded
        await sip.stop()

    asyncio.run(scenario())
    started = CrashingBinding.started[:4]
    gaps = [later - earlier for earlier, later in itertools.pairwise(started)]
    # A loaded machine only makes the gaps longer: each is at least its pause (Restarts,
    # pure, is tested above with exact figures), and the starts never come faster. (In
    # a suite run beside another, a start 0.23 s late passed for calm and the next
    # pause was the first again.)
    assert [gap >= pause for gap, pause in zip(gaps, [0.1, 0.2, 0.4], strict=True)] == [
        True,
        True,
        True,
    ], gaps
