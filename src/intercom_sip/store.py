"""SQLite: the settings, their history, the administrator's credential, the call log
and the auto-answer switch.

The only module that imports sqlite3. Every change is one transaction, made
durable (WAL with synchronous=FULL) before the call returns. sqlite3 errors
leave as StoreError. Any thread may call a Store: a lock serialises the use of its
one connection. The service opens two: one to read, and one that only the writer's
thread uses (`worker.Writer`), so that no commit runs on the event loop and no read
waits on a commit (WAL readers do not wait for the writer).
"""

import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from intercom_sip.calls import (
    LOG_KEEP,
    MAX_DTMF_RECEIVED,
    MAX_REASON,
    MAX_REMOTE,
    CallRecord,
    RtpFigures,
)
from intercom_sip.contract.settings import Settings, to_view
from intercom_sip.contract.validation import from_record, to_record

log = logging.getLogger(__name__)

DB_NAME: Final = "intercom-sip.sqlite3"
STAMP_NAME: Final = "credential.changed"  # replaced with every new credential
HISTORY_KEEP: Final = 1000  # rows; the oldest go first
BUSY_TIMEOUT: Final = 5.0  # seconds a write waits for another process's write lock

_SCHEMA_1: Final = """
CREATE TABLE settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    record TEXT NOT NULL
);
CREATE TABLE history (
    id INTEGER PRIMARY KEY,  -- no AUTOINCREMENT: only the oldest rows go, so ids still grow
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    settings TEXT NOT NULL,
    password_changed INTEGER NOT NULL
);
CREATE TABLE credential (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    changed_at REAL NOT NULL
);
CREATE TABLE identity (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
# Version 2: calls (contract §6). `id` orders the log; the call's own id is `call_id`.
_SCHEMA_2: Final = """
CREATE TABLE calls (
    id INTEGER PRIMARY KEY,  -- no AUTOINCREMENT: only the oldest rows go, so ids still grow
    call_id TEXT NOT NULL,
    direction TEXT NOT NULL,
    remote TEXT NOT NULL,
    started INTEGER NOT NULL,
    answered INTEGER,
    ended INTEGER NOT NULL,
    duration INTEGER,
    codec TEXT,
    srtp INTEGER,
    dtmf_received TEXT,
    rtp_sent INTEGER,
    rtp_received INTEGER,
    rtp_lost INTEGER,
    rtp_jitter_ms REAL,
    end_reason TEXT NOT NULL,
    code INTEGER,
    reason TEXT
);
CREATE TABLE call_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    auto_answer INTEGER NOT NULL
);
"""
# Step n takes a store of version n to version n + 1 (PRAGMA user_version).
_MIGRATIONS: Final = (_SCHEMA_1, _SCHEMA_2)
SCHEMA_VERSION: Final = len(_MIGRATIONS)

_SAVE_CALL: Final = """
INSERT INTO calls (call_id, direction, remote, started, answered, ended, duration, codec, srtp,
    dtmf_received, rtp_sent, rtp_received, rtp_lost, rtp_jitter_ms, end_reason, code, reason)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_LOAD_CALLS: Final = """
SELECT call_id, direction, remote, started, answered, ended, duration, codec, srtp,
    dtmf_received, rtp_sent, rtp_received, rtp_lost, rtp_jitter_ms, end_reason, code, reason
FROM calls ORDER BY id DESC LIMIT ?
"""


class StoreError(Exception):
    """The store could not read or write; nothing was changed."""


@dataclass(frozen=True)
class Credential:
    """The administrator's password as a salted scrypt hash; repr shows neither."""

    salt: bytes = field(repr=False)
    hash: bytes = field(repr=False)


@dataclass(frozen=True)
class Change:
    """One accepted POST: the settings it made, those it replaced, when and by whom."""

    new: Settings
    old: Settings
    at: float
    actor: str


@dataclass(frozen=True)
class HistoryEntry:
    at: float
    actor: str
    settings: dict[str, Any]  # as GET shows them: the password is never here
    password_changed: bool


class Store:
    """One connection, used by one thread at a time (a lock sees to it)."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def open(cls, data_dir: Path, busy_timeout: float = BUSY_TIMEOUT) -> "Store":
        """Open (creating if need be) the store in a private data directory."""
        path = _prepare(data_dir)
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(f"PRAGMA busy_timeout={round(busy_timeout * 1000)}")
            _migrate(db)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {path}: {exc}") from exc
        return cls(db, path)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def load_settings(self) -> Settings | None:
        row = self._one("SELECT record FROM settings WHERE id = 1")
        if row is None:
            return None
        settings = from_record(row[0])
        if settings is None:
            raise StoreError("the stored settings are unreadable")
        return settings

    def save_settings(self, new: Settings, old: Settings, at: float, actor: str) -> None:
        """Replace the settings and record the change, in one durable transaction."""
        self.save_changes([Change(new, old, at, actor)])

    def save_changes(self, changes: Sequence["Change"]) -> None:
        """Record each change and keep the last one's settings: one durable transaction
        (one fsync) for a whole group of changes made in a row."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO settings (id, record) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET record = excluded.record",
                (to_record(changes[-1].new),),
            )
            db.executemany(
                "INSERT INTO history (at, actor, settings, password_changed) VALUES (?, ?, ?, ?)",
                [
                    (c.at, c.actor, json.dumps(to_view(c.new)), c.new.password != c.old.password)
                    for c in changes
                ],
            )
            db.execute(
                "DELETE FROM history WHERE id <= (SELECT MAX(id) FROM history) - ?",
                (HISTORY_KEEP,),
            )

    def history(self, limit: int = 50) -> list[HistoryEntry]:
        rows = self._all(
            "SELECT at, actor, settings, password_changed FROM history ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [HistoryEntry(at, who, json.loads(text), bool(pw)) for at, who, text, pw in rows]

    def save_call(self, record: CallRecord) -> None:
        """Log an ended call durably, the oldest beyond the last LOG_KEEP going in the
        same transaction. Blocking (an fsync): call it off the event loop."""
        with self._transaction() as db:
            db.execute(_SAVE_CALL, _call_row(record))
            db.execute(
                "DELETE FROM calls WHERE id <= (SELECT MAX(id) FROM calls) - ?", (LOG_KEEP,)
            )

    def calls(self, limit: int = 50) -> list[CallRecord]:
        """The logged calls, newest first."""
        rows = self._all(_LOAD_CALLS, (limit,))
        return [_call_record(row) for row in rows]

    def load_auto_answer(self) -> bool:
        row = self._one("SELECT auto_answer FROM call_settings WHERE id = 1")
        return row is not None and bool(row[0])

    def save_auto_answer(self, enabled: bool) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO call_settings (id, auto_answer) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET auto_answer = excluded.auto_answer",
                (enabled,),
            )

    def load_credential(self) -> Credential | None:
        row = self._one("SELECT salt, hash FROM credential WHERE id = 1")
        return None if row is None else Credential(row[0], row[1])

    def save_credential(self, credential: Credential, at: float) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO credential (id, salt, hash, changed_at) VALUES (1, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET salt = excluded.salt, hash = excluded.hash,"
                " changed_at = excluded.changed_at",
                (credential.salt, credential.hash, at),
            )
        self._replace_stamp()

    def made_once(self, key: str, make: str) -> str:
        """The stored value for key; `make` is stored first when there is none."""
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO identity (key, value) VALUES (?, ?)", (key, make))
            row = db.execute("SELECT value FROM identity WHERE key = ?", (key,)).fetchone()
        return str(row[0])

    def credential_stamp(self) -> tuple[int, int, int]:
        """Changes with every save_credential(), whichever process made it.

        A stat() to watch instead of the database: a `PRAGMA data_version` on every
        request took a quarter of the API's throughput (measured, bench/api.py).
        """
        try:
            stat = os.stat(self._stamp)
        except OSError:
            return (0, 0, 0)
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    @property
    def _stamp(self) -> Path:
        return self.path.parent / STAMP_NAME

    def _replace_stamp(self) -> None:
        # A new file renamed over the old: a new inode, so no change can go unseen.
        fresh = self._stamp.with_suffix(".tmp")
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, os.urandom(8).hex().encode())
        finally:
            os.close(fd)
        os.replace(fresh, self._stamp)

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        try:
            with self._lock:
                row: tuple[Any, ...] | None = self._db.execute(sql, args).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
        return row

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc


def _prepare(data_dir: Path) -> Path:
    """A 0700 directory holding a 0600 database (the SIP password is in it)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if data_dir.stat().st_mode & 0o077:
        log.warning("data directory %s was open to others; narrowed to 0700", data_dir)
        data_dir.chmod(0o700)
    path = data_dir / DB_NAME
    # Created 0600 before SQLite opens it; SQLite gives -wal and -shm the same mode. Only
    # when missing: closing any descriptor of the file drops every POSIX lock this process
    # holds on it, the shared lock of an open connection too, and then another process
    # closing its connection thinks it is the last one and deletes the WAL under us.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    for existing in data_dir.glob(DB_NAME + "*"):
        existing.chmod(0o600)
    return path


def _call_row(record: CallRecord) -> tuple[Any, ...]:
    rtp = record.rtp
    return (
        record.id,
        record.direction,
        record.remote[:MAX_REMOTE],
        record.started,
        record.answered,
        record.ended,
        record.duration,
        record.codec,
        record.srtp,
        None if record.dtmf_received is None else record.dtmf_received[-MAX_DTMF_RECEIVED:],
        *((rtp.sent, rtp.received, rtp.lost, rtp.jitter_ms) if rtp else (None,) * 4),
        record.end_reason,
        record.code,
        None if record.reason is None else record.reason[:MAX_REASON],
    )


def _call_record(row: tuple[Any, ...]) -> CallRecord:
    (call_id, direction, remote, started, answered, ended, duration, codec, srtp, dtmf) = row[:10]
    sent, received, lost, jitter_ms, end_reason, code, reason = row[10:]
    return CallRecord(
        id=call_id,
        direction=direction,
        remote=remote,
        started=started,
        ended=ended,
        end_reason=end_reason,
        answered=answered,
        duration=duration,
        codec=codec,
        srtp=None if srtp is None else bool(srtp),
        dtmf_received=dtmf,
        rtp=None if sent is None else RtpFigures(sent, received, lost, jitter_ms),
        code=code,
        reason=reason,
    )


def _migrate(db: sqlite3.Connection) -> None:
    """Bring the store to SCHEMA_VERSION, one step at a time, in one transaction."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(f"schema version {version} is newer than this program")
    db.execute("BEGIN IMMEDIATE")
    try:
        # Read again under the lock: another process may have migrated meanwhile.
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {version} is newer than this program")
        for step in _MIGRATIONS[version:]:
            for statement in filter(str.strip, step.split(";")):
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
