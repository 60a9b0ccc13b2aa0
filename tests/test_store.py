"""The store's connections: the service opens two on one database (a reader, and the
writer's own, used by the writer's one thread), and other processes (`intercom-sip
passwd`, `history`) come and go."""

import asyncio
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from intercom_sip.contract.fields import FACTORY
from intercom_sip.store import DB_NAME, Store, StoreError
from intercom_sip.worker import Writer
from tests.test_store_calls import ANSWERED

# What another process sees: the history's length, read on a connection of its own.
PEEK = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute("SELECT COUNT(*) FROM history").fetchone()[0])
db.close()
"""


def history_seen_elsewhere(data_dir: Path) -> int:
    command = [sys.executable, "-c", PEEK, str(data_dir / DB_NAME)]
    return int(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def test_a_second_open_keeps_the_commits_of_the_first_visible(tmp_path: Path) -> None:
    """Opening the store again must not drop the process's locks on the database: then
    a process that closes its connection takes itself for the last one and deletes the
    WAL that the service's commits go on into, lost to everyone else."""
    data = tmp_path / "data"
    reader = Store.open(data)
    writer = Store.open(data)  # as the server opens the writer's connection
    assert history_seen_elsewhere(data) == 0  # another process comes and goes
    writer.save_settings(replace(FACTORY, timeout=600), FACTORY, 1.0, "t")
    assert history_seen_elsewhere(data) == 1
    writer.close()
    reader.close()


def test_a_second_open_keeps_the_database_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = Store.open(data)
    (data / DB_NAME).chmod(0o644)
    second = Store.open(data)
    assert (data / DB_NAME).stat().st_mode & 0o777 == 0o600
    second.close()
    first.close()


def test_the_writer_writes_on_its_own_thread_in_order(tmp_path: Path) -> None:
    data = tmp_path / "data"
    reader = Store.open(data)
    writer = Writer(Store.open(data))
    threads: list[str] = []

    def write(timeout: int) -> Callable[[Store], None]:
        def run(store: Store) -> None:
            threads.append(threading.current_thread().name)
            store.save_settings(replace(FACTORY, timeout=timeout), FACTORY, 1.0, "t")

        return run

    async def scenario() -> None:
        await asyncio.gather(*(writer.run(write(t)) for t in (120, 300, 600)))

    asyncio.run(scenario())
    writer.save_call(ANSWERED)  # blocking, as the phone shell calls it from a thread
    writer.close()
    assert [e.settings["timeout"] for e in reader.history()] == [600, 300, 120]
    assert reader.calls() == [ANSWERED]
    assert len(set(threads)) == 1 and threads[0].startswith("store")
    assert threading.current_thread().name not in threads


def test_the_writer_raises_the_stores_error_on_the_loop(tmp_path: Path) -> None:
    writer = Writer(Store.open(tmp_path / "data"))

    def broken(store: Store) -> None:
        raise StoreError("disk I/O error")

    async def scenario() -> BaseException | None:
        try:
            await writer.run(broken)
        except StoreError as exc:
            return exc
        return None

    failure = asyncio.run(scenario())
    writer.close()
    assert str(failure) == "disk I/O error"
