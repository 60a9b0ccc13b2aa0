"""The apply path: a settings change's REGISTER leaves in the very callback that completes
its commit, and the POST's answer still waits for that commit (issue 13).

The store's writer is a fake that commits when the test says so; the registrar is a UDP
socket of the test's, read without waiting: a datagram sent on loopback is in the
receiver's buffer when `sendto` returns, so "already there" means "sent in that call".
"""

import asyncio
import json
import socket
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from intercom_sip.agent.supervisor import Agent, AgentOptions
from intercom_sip.contract.fields import FACTORY
from intercom_sip.contract.settings import Settings, to_view
from intercom_sip.device import Device
from intercom_sip.sip.message import Request, parse, response_bytes, response_to
from intercom_sip.store import Store

WAIT = 5.0  # seconds, at most, for what the loop must do by itself


class HeldWriter:
    """Holds each write until `complete()`: then commits it and tells the device in the
    same call, as the real writer's `call_soon_threadsafe` callback does on the loop."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.held: list[tuple[Callable[[Store], object], Callable[[Exception | None], None]]]
        self.held = []

    def call(
        self, write: Callable[[Store], object], then: Callable[[Exception | None], None]
    ) -> None:
        self.held.append((write, then))

    def complete(self) -> None:
        write, then = self.held.pop(0)
        write(self.store)
        then(None)


def registrar_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def body(settings: Settings) -> bytes:
    return json.dumps({**to_view(settings), "password": settings.password}).encode()


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run until `condition` holds (bounded): the agent's status has no
    event to wait on, so each turn looks again."""
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0)


async def register_and_grant(registrar: socket.socket) -> Request:
    """Read the agent's REGISTER (waiting for the loop to send it) and grant it."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(WAIT):
        data, source = await loop.sock_recvfrom(registrar, 65535)
    request = parse(data)
    assert isinstance(request, Request)
    contact = request.headers.get("Contact") or ""
    ok = response_to(request, 200, "OK", "reg1", [("Contact", f"{contact};expires=900")])
    registrar.sendto(response_bytes(ok), source)
    return request


def account_at(registrar: socket.socket) -> Settings:
    return replace(
        FACTORY,
        enable=True,
        proxy=f"127.0.0.1:{registrar.getsockname()[1]}",
        realm="example.com",
        user="101",
        password="first1",
        registration_interval=900,
    )


async def started_agent() -> Agent:
    sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sip.bind(("127.0.0.1", 0))
    agent = Agent(AgentOptions(instance="urn:uuid:x", user_agent="test"))
    await agent.start(sip)
    return agent


async def stop(agent: Agent, registrar: socket.socket) -> None:
    stopping = asyncio.create_task(agent.stop())
    await register_and_grant(registrar)  # the un-REGISTER: a prompt stop
    await stopping
    registrar.close()


def test_the_register_leaves_in_the_callback_that_completes_the_commit(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        registrar = registrar_socket()
        agent = await started_agent()
        store = Store.open(tmp_path / "data")
        writer = HeldWriter(store)
        device = Device(store, agent, writer=writer)  # type: ignore[arg-type]
        device.start()
        on = account_at(registrar)
        first = asyncio.create_task(device.change(body(on), "test"))
        await until(lambda: bool(writer.held))
        writer.complete()
        await first
        await register_and_grant(registrar)
        await until(lambda: agent.status().state == "registered")

        change = asyncio.create_task(device.change(body(replace(on, password="second2")), "t"))
        await until(lambda: bool(writer.held))
        before = [_waiting(registrar), str(change.done())]
        writer.complete()  # the commit completes: nothing else runs before the next line
        sent = registrar.recv(65535)  # raises BlockingIOError if it did not leave yet
        request = parse(sent)
        assert isinstance(request, Request)
        result = await change
        await stop(agent, registrar)
        store.close()
        return (
            before,
            [
                request.method,
                request.headers.get("CSeq") or "",
                request.headers.get("Expires") or "",
                str(result == replace(on, password="second2")),
            ],
        )

    before, after = asyncio.run(scenario())
    assert before == ["nothing", "False"]  # nothing sent, no 200 before the commit
    assert after == ["REGISTER", "2 REGISTER", "900", "True"]


def test_a_new_account_behind_a_queued_event_waits_its_turn() -> None:
    """What the registrant's task has queued goes first: a refresh asked for, then the
    new password in the same turn, leave in that order (CSeq 2, then 3)."""

    async def scenario() -> list[str]:
        registrar = registrar_socket()
        agent = await started_agent()
        on = account_at(registrar)
        agent.apply(on)
        await register_and_grant(registrar)
        await until(lambda: agent.status().state == "registered")
        agent.reregister()  # queued for the task
        agent.apply(replace(on, password="second2"))
        now = _waiting(registrar)
        first = await register_and_grant(registrar)
        second = await register_and_grant(registrar)
        await stop(agent, registrar)
        return [now, *(r.headers.get("CSeq") or "" for r in (first, second))]

    assert asyncio.run(scenario()) == ["nothing", "2 REGISTER", "3 REGISTER"]


def _waiting(registrar: socket.socket) -> str:
    """What the registrar has received and not read: "nothing", or the first line."""
    try:
        return registrar.recv(65535).split(b"\r\n", 1)[0].decode()
    except BlockingIOError:
        return "nothing"
