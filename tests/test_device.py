"""Group commit: the changes of one turn of the event loop, in one durable transaction,
committed on the writer's thread while the loop goes on."""

import asyncio
import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from intercom_sip import device as device_module
from intercom_sip.contract.fields import FACTORY
from intercom_sip.contract.settings import Settings
from intercom_sip.contract.validation import Invalid
from intercom_sip.device import Device, NoAgent
from intercom_sip.store import Change, Store, StoreError
from intercom_sip.worker import Writer
from tests.test_validation import BASE


class CountingStore(Store):
    groups: list[int]

    def save_changes(self, changes: Sequence[Change]) -> None:
        self.groups.append(len(changes))
        super().save_changes(changes)


def open_store(path: Path) -> CountingStore:
    plain = Store.open(path)
    store = CountingStore(plain._db, plain.path)  # the same connection
    store.groups = []
    return store


def bodies(count: int) -> list[bytes]:
    return [
        json.dumps({**BASE, "user": f"u{i}", "password": f"pass{i:04}"}).encode()
        for i in range(count)
    ]


def test_concurrent_changes_share_one_commit(tmp_path: Path) -> None:
    store = open_store(tmp_path / "data")
    applied: list[Settings] = []

    class Agent(NoAgent):
        def apply(self, settings: Settings) -> None:
            applied.append(settings)

    async def scenario() -> list[Any]:
        device = Device(store, Agent(), wallclock=lambda: 1.0)
        return list(await asyncio.gather(*(device.change(b, "t") for b in bodies(5))))

    results = asyncio.run(scenario())
    assert [r.user for r in results] == ["u0", "u1", "u2", "u3", "u4"]
    assert store.groups == [5]  # one transaction, one fsync
    assert [e.settings["user"] for e in store.history(10)] == ["u4", "u3", "u2", "u1", "u0"]
    stored = store.load_settings()
    assert stored is not None
    assert (stored.user, stored.password) == ("u4", "pass0004")
    assert [s.user for s in applied] == ["u4"]  # the agent sees the last state only


def test_each_change_is_checked_against_the_one_before(tmp_path: Path) -> None:
    store = open_store(tmp_path / "data")

    async def scenario() -> list[Any]:
        device = Device(store, NoAgent())
        first = device.change(json.dumps(BASE).encode(), "t")
        # posted back before the first is durable: WebPass keeps the password just set
        second = device.change(
            json.dumps({**BASE, "password": "WebPass", "timeout": 600}).encode(), "t"
        )
        return list(await asyncio.gather(first, second))

    first, second = asyncio.run(scenario())
    assert isinstance(first, Settings)
    assert isinstance(second, Settings)
    assert (second.password, second.timeout) == ("secret1", 600)
    assert store.groups == [2]


def test_a_failed_group_fails_every_change_in_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(tmp_path / "data")

    def broken(changes: Sequence[Change]) -> None:
        raise StoreError("disk I/O error")

    async def scenario() -> list[Any]:
        device = Device(store, NoAgent())
        monkeypatch.setattr(store, "save_changes", broken)
        failed = await asyncio.gather(
            *(device.change(b, "t") for b in bodies(3)), return_exceptions=True
        )
        monkeypatch.undo()
        # the next change is checked against what is stored, not the void group
        again = await device.change(json.dumps({**BASE, "password": "WebPass"}).encode(), "t")
        return [*failed, again, device.settings]

    *failed, again, settings = asyncio.run(scenario())
    assert [str(f) for f in failed] == ["disk I/O error"] * 3
    assert again == Invalid(
        "Wrong JSON body: value `password` is invalid: cannot be WebPass: no password is stored"
    )
    assert settings == FACTORY
    assert store.load_settings() is None


# --- off the loop: the commit runs on the writer's thread --------------------------------

LOCK_WAIT = 10.0  # seconds a test waits for the writer's thread; never reached when right


class Probe:
    """Counts the turns of `call_later` ticks: they stop while anything blocks the loop."""

    def __init__(self, interval: float = 0.005) -> None:
        self.ticks = 0
        self._interval = interval
        self._handle: asyncio.TimerHandle | None = None
        self._target: tuple[int, asyncio.Future[None]] | None = None

    def start(self) -> None:
        self._handle = asyncio.get_running_loop().call_later(self._interval, self._tick)

    def after(self, ticks: int) -> "asyncio.Future[None]":
        """Done once the probe has ticked `ticks` more times."""
        reached = asyncio.get_running_loop().create_future()
        self._target = (self.ticks + ticks, reached)
        return reached

    def _tick(self) -> None:
        self.ticks += 1
        if self._target is not None and self.ticks >= self._target[0]:
            self._target[1].set_result(None)
            self._target = None
        self.start()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


def hold_write_lock(store: Store) -> sqlite3.Connection:
    """Another process's write transaction on the same database, as a second
    connection: every other writer waits for it, up to its busy timeout."""
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


async def ticks_while_pending(probe: Probe, task: "asyncio.Task[Any]", ticks: int) -> bool:
    """True once the probe has ticked `ticks` times with the task still pending."""
    reached = probe.after(ticks)
    await asyncio.wait({task, reached}, return_when=asyncio.FIRST_COMPLETED)
    return not task.done()


def test_a_commit_waiting_for_the_write_lock_leaves_the_loop_free(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "data")

    async def scenario() -> tuple[bool, Any]:
        device = Device(store, NoAgent())
        holder = hold_write_lock(store)
        probe = Probe()
        probe.start()
        post = asyncio.create_task(device.change(bodies(1)[0], "t"))
        pending = await ticks_while_pending(probe, post, 5)
        holder.close()  # the other process is done: the commit goes on
        result = await post
        probe.stop()
        return pending, result

    pending, result = asyncio.run(scenario())
    assert pending  # the loop ticked on while the POST waited for the lock
    assert isinstance(result, Settings)
    assert store.load_settings() == result  # answered once durable


def test_a_commit_that_never_gets_the_lock_fails_and_the_loop_ran(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "data", busy_timeout=1.0)

    async def scenario() -> tuple[int, BaseException | None, Settings]:
        device = Device(store, NoAgent())
        holder = hold_write_lock(store)
        probe = Probe()
        probe.start()
        post = asyncio.create_task(device.change(bodies(1)[0], "t"))
        await asyncio.wait({post}, timeout=LOCK_WAIT)
        probe.stop()
        holder.close()
        return probe.ticks, post.exception(), device.settings

    ticks, failure, settings = asyncio.run(scenario())
    assert ticks >= 3  # a blocked loop ticks once, late, after the commit gave up
    assert isinstance(failure, StoreError)
    assert str(failure) == "database is locked"
    assert settings == FACTORY
    assert store.load_settings() is None


class GatedStore(CountingStore):
    """Each commit tells that it began, then waits for the gate; it fails with `failure`."""

    entered: threading.Event
    gate: threading.Event
    failure: StoreError | None

    def save_changes(self, changes: Sequence[Change]) -> None:
        self.entered.set()
        if not self.gate.wait(LOCK_WAIT):
            raise AssertionError("the commit was not let through: the loop was blocked")
        if self.failure is not None:
            self.groups.append(len(changes))
            raise self.failure
        super().save_changes(changes)


def gated_store(path: Path, failure: StoreError | None = None) -> GatedStore:
    plain = Store.open(path)
    store = GatedStore(plain._db, plain.path)
    store.groups, store.entered, store.gate = [], threading.Event(), threading.Event()
    store.failure = failure
    return store


def test_reads_do_not_wait_for_a_commit(tmp_path: Path) -> None:
    """The server's wiring: the writer's own connection, the call log read on another."""
    store = Store.open(tmp_path / "data")
    writes = gated_store(tmp_path / "data")
    writes.gate.set()  # no gate: the commit waits for the lock alone

    async def scenario() -> tuple[list[Any], bool]:
        device = Device(store, NoAgent(), writer=Writer(writes))
        holder = hold_write_lock(store)
        post = asyncio.create_task(device.change(bodies(1)[0], "t"))
        assert await asyncio.to_thread(writes.entered.wait, LOCK_WAIT)
        read = await asyncio.wait_for(device.call_history(10), LOCK_WAIT)
        pending = not post.done()
        holder.close()
        await post
        return read, pending

    read, pending = asyncio.run(scenario())
    assert (read, pending) == ([], True)
    assert writes.groups == [1]


async def in_flight(store: GatedStore, device: Device, first: bytes) -> "asyncio.Task[Any]":
    """The first change's commit, begun on the writer's thread and held at the gate."""
    task = asyncio.create_task(device.change(first, "t"))
    assert await asyncio.to_thread(store.entered.wait, LOCK_WAIT)
    return task


def test_changes_during_a_commit_form_the_next_group(tmp_path: Path) -> None:
    store = gated_store(tmp_path / "data")
    applied: list[Settings] = []

    class Agent(NoAgent):
        def apply(self, settings: Settings) -> None:
            applied.append(settings)

    async def scenario() -> list[Any]:
        device = Device(store, Agent())
        first = await in_flight(store, device, json.dumps(BASE).encode())
        # accepted against the first, not yet durable: WebPass keeps its password
        later = [
            asyncio.create_task(device.change(body, "t"))
            for body in (
                json.dumps({**BASE, "password": "WebPass", "timeout": 600}).encode(),
                json.dumps({**BASE, "password": "WebPass", "timeout": 1200}).encode(),
            )
        ]
        await asyncio.sleep(0)  # the later changes accepted, behind the one in flight
        seen = device.settings  # what GET shows meanwhile: the durable settings
        store.gate.set()
        return [seen, *await asyncio.gather(first, *later)]

    seen, first, second, third = asyncio.run(scenario())
    assert seen == FACTORY
    assert isinstance(first, Settings) and first.password == "secret1"
    assert isinstance(second, Settings) and (second.password, second.timeout) == ("secret1", 600)
    assert third == store.load_settings()
    assert store.groups == [1, 2]  # two transactions: the one in flight, then the rest
    assert [s.timeout for s in applied] == [120, 1200]


def test_a_failed_commit_fails_the_changes_accepted_behind_it(tmp_path: Path) -> None:
    store = gated_store(tmp_path / "data", failure=StoreError("disk I/O error"))

    async def scenario() -> list[Any]:
        device = Device(store, NoAgent())
        first = await in_flight(store, device, json.dumps(BASE).encode())
        later = [
            asyncio.create_task(device.change(body, "t"))
            for body in (
                # valid only because of the first change, which will fail
                json.dumps({**BASE, "password": "WebPass", "timeout": 600}).encode(),
                # the same as the first: nothing to change, but not yet durable
                json.dumps({**BASE, "timeout": 600}).encode(),
            )
        ]
        await asyncio.sleep(0)  # the later changes accepted, behind the one in flight
        store.gate.set()
        failed = await asyncio.gather(first, *later, return_exceptions=True)
        store.failure = None
        # the next change is checked against what is stored, not the void groups
        again = await device.change(json.dumps({**BASE, "password": "WebPass"}).encode(), "t")
        return [*failed, again, device.settings]

    *failed, again, settings = asyncio.run(scenario())
    assert [str(f) for f in failed] == [
        "disk I/O error",
        "the change before failed: disk I/O error",
        "the change before failed: disk I/O error",
    ]
    assert all(isinstance(f, StoreError) for f in failed)
    assert store.groups == [1]  # the group behind was never tried
    assert again == Invalid(
        "Wrong JSON body: value `password` is invalid: cannot be WebPass: no password is stored"
    )
    assert settings == FACTORY
    assert store.load_settings() is None


def test_a_client_that_leaves_does_not_fail_its_group(tmp_path: Path) -> None:
    store = open_store(tmp_path / "data")

    async def scenario() -> Any:
        device = Device(store, NoAgent())
        left, stayed = (asyncio.create_task(device.change(b, "t")) for b in bodies(2))
        await asyncio.sleep(0)  # both accepted, in one group
        left.cancel()
        return await stayed

    stayed = asyncio.run(scenario())
    assert isinstance(stayed, Settings) and stayed.user == "u1"
    assert store.groups == [2]
    assert store.load_settings() == stayed


def test_changes_waiting_behind_a_commit_are_bounded(tmp_path: Path) -> None:
    store = gated_store(tmp_path / "data")

    async def scenario() -> list[Any]:
        device = Device(store, NoAgent())
        first = await in_flight(store, device, json.dumps(BASE).encode())
        waiting = [
            asyncio.create_task(device.change(body, "t"))
            for body in bodies(device_module.MAX_WAITING + 1)
        ]
        await asyncio.sleep(0)  # every one checked: the last one finds the group full
        store.gate.set()
        return list(await asyncio.gather(first, *waiting, return_exceptions=True))

    first, *accepted, refused = asyncio.run(scenario())
    assert isinstance(first, Settings)
    assert [r.user for r in accepted] == [f"u{i}" for i in range(device_module.MAX_WAITING)]
    assert isinstance(refused, StoreError)
    assert str(refused) == "too many changes waiting for the store"
    assert store.groups == [1, device_module.MAX_WAITING]
    assert store.load_settings() == accepted[-1]
