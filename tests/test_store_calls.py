"""The store's part of calls: the call log (bounded, newest first, written from a worker
thread), the auto-answer switch, and the migration from schema version 1."""

import sqlite3
import threading
from pathlib import Path

import pytest

from intercom_sip import store as store_module
from intercom_sip.calls import CallRecord, RtpFigures
from intercom_sip.contract.fields import FACTORY
from intercom_sip.contract.settings import Settings
from intercom_sip.contract.validation import to_record, validate
from intercom_sip.store import DB_NAME, Store, StoreError
from tests.test_validation import BASE

ANSWERED = CallRecord(
    id="c-7f3a",
    direction="in",
    remote="sip:100@example.com",
    started=1764441600,
    ended=1764441722,
    end_reason="timeout",
    answered=1764441602,
    duration=120,
    codec="PCMU",
    srtp=False,
    dtmf_received="1#",
    rtp=RtpFigures(6000, 5998, 2, 0.4),
)
CANCELLED = CallRecord(
    id="c-8",
    direction="in",
    remote="sip:door@example.com",
    started=1764441800,
    ended=1764441805,
    end_reason="cancelled",
    code=487,
    reason="Request Terminated",
)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "data")


def test_a_call_reads_back_whole(store: Store) -> None:
    store.save_call(ANSWERED)
    store.save_call(CANCELLED)
    assert store.calls() == [CANCELLED, ANSWERED]
    assert store.calls(1) == [CANCELLED]


def test_the_log_is_durable(tmp_path: Path) -> None:
    first = Store.open(tmp_path / "data")
    first.save_call(ANSWERED)
    first.close()
    assert Store.open(tmp_path / "data").calls() == [ANSWERED]


def test_the_log_keeps_the_last_1000(store: Store) -> None:
    for n in range(1001):
        store.save_call(CallRecord(f"c-{n}", "out", "sip:1@example.com", n, n + 1, "busy"))
    kept = store.calls(2000)
    assert len(kept) == 1000
    assert (kept[0].id, kept[-1].id) == ("c-1000", "c-1")  # c-0, the oldest, went
    store.save_call(ANSWERED)  # one more in: one more of the oldest out
    kept = store.calls(2000)
    assert (len(kept), kept[0], kept[-1].id) == (1000, ANSWERED, "c-2")


def test_what_a_peer_can_grow_is_cut(store: Store) -> None:
    long = CallRecord(
        "c-9",
        "in",
        "sip:" + "a" * 600 + "@example.com",
        1,
        2,
        "failed",
        dtmf_received="0123456789" * 30,
        code=500,
        reason="x" * 300,
    )
    store.save_call(long)
    (saved,) = store.calls()
    assert saved.remote == long.remote[:512]
    assert saved.dtmf_received == long.dtmf_received[-256:]  # type: ignore[index]
    assert saved.reason == "x" * 128


def test_the_log_is_written_from_a_worker_thread(store: Store) -> None:
    """The shell logs a call off the event loop: the one connection must allow it."""
    failures: list[BaseException] = []

    def save() -> None:
        try:
            store.save_call(ANSWERED)
        except BaseException as exc:  # pragma: no cover - the failure this test is for
            failures.append(exc)

    worker = threading.Thread(target=save)
    worker.start()
    worker.join(30)
    assert failures == []
    assert store.calls() == [ANSWERED]


def test_threads_share_the_store_without_harm(store: Store) -> None:
    def save(first: int) -> None:
        for n in range(first, first + 25):
            store.save_call(CallRecord(f"c-{n}", "in", "sip:1@example.com", n, n, "busy"))

    workers = [threading.Thread(target=save, args=(i * 100,)) for i in range(4)]
    for worker in workers:
        worker.start()
    for _ in range(25):
        store.load_settings()  # reads on this thread meanwhile
    for worker in workers:
        worker.join(60)
    assert len(store.calls(1000)) == 100


# --- auto-answer ------------------------------------------------------------------------------


def test_auto_answer_is_off_from_the_factory_and_durable(tmp_path: Path) -> None:
    first = Store.open(tmp_path / "data")
    assert first.load_auto_answer() is False
    first.save_auto_answer(True)
    first.save_auto_answer(True)
    first.close()
    second = Store.open(tmp_path / "data")
    assert second.load_auto_answer() is True
    second.save_auto_answer(False)
    assert second.load_auto_answer() is False


# --- migration --------------------------------------------------------------------------------

# The schema of version 1, as the previous release made it (store.py at a48b263).
SCHEMA_1 = """
CREATE TABLE settings (id INTEGER PRIMARY KEY CHECK (id = 1), record TEXT NOT NULL);
CREATE TABLE history (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, actor TEXT NOT NULL, settings TEXT NOT NULL,
    password_changed INTEGER NOT NULL
);
CREATE TABLE credential (
    id INTEGER PRIMARY KEY CHECK (id = 1), salt BLOB NOT NULL, hash BLOB NOT NULL,
    changed_at REAL NOT NULL
);
CREATE TABLE identity (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def make_version_1(data_dir: Path, settings: Settings) -> None:
    data_dir.mkdir(mode=0o700)
    db = sqlite3.connect(data_dir / DB_NAME, isolation_level=None)
    db.executescript(SCHEMA_1)
    db.execute("INSERT INTO settings (id, record) VALUES (1, ?)", (to_record(settings),))
    db.execute("INSERT INTO identity (key, value) VALUES ('serial_number', 'ABC')")
    db.execute("PRAGMA user_version = 1")
    db.close()


def test_a_version_1_store_opens_and_migrates(tmp_path: Path) -> None:
    settings = validate(BASE, FACTORY)
    assert isinstance(settings, Settings)
    make_version_1(tmp_path / "data", settings)
    store = Store.open(tmp_path / "data")
    assert store.load_settings() == settings
    assert store.made_once("serial_number", "new") == "ABC"
    assert (store.calls(), store.load_auto_answer()) == ([], False)
    store.save_call(ANSWERED)
    store.save_auto_answer(True)
    store.close()
    again = Store.open(tmp_path / "data")  # a second open finds version 2: nothing to do
    assert (again.calls(), again.load_auto_answer()) == ([ANSWERED], True)
    version = sqlite3.connect(tmp_path / "data" / DB_NAME).execute("PRAGMA user_version")
    assert version.fetchone()[0] == store_module.SCHEMA_VERSION == 2


def test_a_newer_store_is_refused(tmp_path: Path) -> None:
    Store.open(tmp_path / "data").close()
    db = sqlite3.connect(tmp_path / "data" / DB_NAME)
    db.execute("PRAGMA user_version = 3")
    db.close()
    with pytest.raises(StoreError, match="schema version 3 is newer than this program"):
        Store.open(tmp_path / "data")
