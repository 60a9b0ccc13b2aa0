"""The store's connections: the service opens two on one database (a reader, and the
writer's own), and other processes (`intercom-sip passwd`, `history`) come and go."""

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from intercom_sip.fields import FACTORY
from intercom_sip.store import DB_NAME, Store

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
