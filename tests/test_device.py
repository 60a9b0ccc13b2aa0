"""Group commit: the changes of one turn of the event loop, in one durable transaction."""

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from intercom_sip.contract.fields import FACTORY
from intercom_sip.contract.settings import Settings
from intercom_sip.contract.validation import Invalid
from intercom_sip.device import Device, NoAgent
from intercom_sip.store import Change, Store, StoreError
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
