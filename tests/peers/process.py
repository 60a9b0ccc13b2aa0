"""Start a peer as a child process, unprivileged, and be sure to end it."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Self

from . import binaries, ports

log = logging.getLogger(__name__)

NOBODY = (65534, 65534)  # nobody:nogroup on Debian


def private_dir(prefix: str) -> Path:
    """A new temp dir the unprivileged peer can write to.

    Not pytest's tmp_path: its parent is 0700 (nobody could not enter it), and its long path
    would push a control socket past the 108-byte AF_UNIX limit.
    """
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    directory.chmod(0o755)
    if os.geteuid() == 0:
        os.chown(directory, *NOBODY)
    return directory


def unprivileged(command: list[str]) -> list[str]:
    """`command` run as nobody:nogroup when we are root, and ended if pytest dies."""
    # A pytest killed with SIGKILL runs no finalizer; the parent-death signal still stops
    # the peer (its main process then ends its own children).
    setpriv = [binaries.find("setpriv"), "--pdeathsig", "TERM"]
    if os.geteuid() == 0:
        setpriv += ["--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    return [*setpriv, *command]


def spawn(command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start `command` in its own process group with stdout and stderr appended to a log."""
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so terminate() reaches children
        )


def terminate(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM, wait up to `timeout`, then SIGKILL whatever is left of its process group."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s ignored SIGTERM for %.1f s; killing it", process.args, timeout)
    # The main process normally reaps its children; this catches stragglers.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages."""
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class Peer:
    """A peer used as `with Peer(...) as peer:`: started on entry, closed on exit."""

    _process: subprocess.Popen[bytes] | None = None

    def strays(self) -> list[int]:
        """Ports in the tests' range that this peer has bound now without our reservation
        (tests/peers/ports.py): none, or another test's peer may fail at start."""
        return [] if self._process is None else ports.strays(self._process.pid)

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
