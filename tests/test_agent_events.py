"""The agent tells its outbox of each change of the registration as it happens: against a
registrar of ours (tests/peers/registrar.py), every state once, in order, and none that
never was (a new binding is `registering` from its start, never a passing `disabled`)."""

import asyncio
import itertools
import socket
from collections.abc import Callable
from dataclasses import replace

import pytest

from intercom_sip.agent.outbox import DeviceEvent, Outbox, RegistrationChanged
from intercom_sip.agent.supervisor import Agent, AgentOptions
from intercom_sip.contract.fields import FACTORY
from intercom_sip.contract.settings import Settings
from intercom_sip.sip.registration import Status
from tests.peers.registrar import Behaviour, Registrar

pytestmark = pytest.mark.peers

PATIENCE = 10.0


def settings(registrar: Registrar) -> Settings:
    return replace(
        FACTORY,
        enable=True,
        proxy=registrar.proxy,
        realm="fake.test",
        user="101",
        password="secret",
    )


async def until(events: list[DeviceEvent], done: Callable[[Status], bool]) -> None:
    async with asyncio.timeout(PATIENCE):
        while not any(isinstance(e, RegistrationChanged) and done(e.status) for e in events):  # noqa: ASYNC110 - the subscriber appends to a list
            await asyncio.sleep(0.01)


def states(events: list[DeviceEvent]) -> list[str]:
    """The states in turn (a state's other keys change too: the contact is known, a 401
    came...), after checking that no event repeats the one before it."""
    shown = [e.status for e in events if isinstance(e, RegistrationChanged)]
    assert [a != b for a, b in itertools.pairwise(shown)] == [True] * (len(shown) - 1)
    return [state for state, _ in itertools.groupby(status.state for status in shown)]


def scenario(registrar: Registrar, steps: Callable[[Agent, list[DeviceEvent]], object]) -> None:
    async def main() -> None:
        outbox, events = Outbox(), list[DeviceEvent]()
        outbox.subscribe(events.append)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        agent = Agent(AgentOptions(instance="urn:uuid:x", user_agent="test", t1=0.05), outbox)
        await agent.start(sock)
        try:
            await steps(agent, events)  # type: ignore[misc]
        finally:
            await agent.stop()

    asyncio.run(main())


def test_each_change_of_the_registration_is_emitted_once_in_order() -> None:
    with Registrar() as registrar:

        async def steps(agent: Agent, events: list[DeviceEvent]) -> None:
            agent.apply(settings(registrar))
            await until(events, lambda status: status.state == "registered")
            assert states(events) == ["registering", "registered"]
            last = events[-1]
            assert last == RegistrationChanged(agent.status())  # what a reader sees now
            assert (last.status.code, last.status.bound) == (200, True)
            events.clear()
            agent.apply(replace(settings(registrar), enable=False))
            await until(events, lambda status: status.state == "disabled")
            assert states(events) == ["unregistering", "disabled"]
            assert events[-1] == RegistrationChanged(Status())

        scenario(registrar, steps)


def test_a_refusal_is_emitted_with_its_code() -> None:
    with Registrar(Behaviour(mode="forbid")) as registrar:

        async def steps(agent: Agent, events: list[DeviceEvent]) -> None:
            agent.apply(settings(registrar))
            await until(events, lambda status: status.state == "failed")
            assert states(events) == ["registering", "failed"]
            failed = events[-1]
            assert isinstance(failed, RegistrationChanged)
            assert (failed.status.code, failed.status.bound) == (403, False)

        scenario(registrar, steps)


def test_the_end_of_a_binding_not_refreshed_is_emitted_when_it_comes() -> None:
    """Nothing arrives when a binding runs out (its refresh refused, the retry a minute
    away): the end is a change all the same, emitted at the expiry."""
    with Registrar(Behaviour(grant=3)) as registrar:

        async def steps(agent: Agent, events: list[DeviceEvent]) -> None:
            agent.apply(settings(registrar))
            await until(events, lambda status: status.state == "registered")
            registrar.behaviour = replace(registrar.behaviour, mode="forbid")
            events.clear()
            await until(events, lambda status: status.code == 403)  # the refresh, at 1.5 s
            refused = events[-1]
            assert isinstance(refused, RegistrationChanged)
            assert (refused.status.state, refused.status.bound) == ("registered", True)
            events.clear()
            await until(events, lambda status: not status.bound)  # at 3 s
            expired = events[-1]
            assert isinstance(expired, RegistrationChanged)
            assert (expired.status.state, expired.status.code, expired.status.expires) == (
                "failed",
                403,
                None,
            )

        scenario(registrar, steps)
