"""coturn's turnserver as a plain STUN server on 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from . import binaries, process, stun

HOST = "127.0.0.1"


class PortBusy(RuntimeError):
    """Something already answers STUN on the chosen port."""


class Coturn(process.Peer):
    """turnserver answering STUN Binding requests on 127.0.0.1:`port` (UDP)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        """Where to send STUN requests."""
        return HOST, self.port

    @property
    def log_path(self) -> Path:
        """turnserver's log (it logs to stdout with --log-file=stdout)."""
        if self._dir is None:
            self._dir = process.private_dir("coturn-")
        return self._dir / "turnserver.log"

    def start(self, timeout: float = 30.0) -> None:
        """Start turnserver; return once it answers a Binding request."""
        if self._process is not None:
            return
        # coturn binds with SO_REUSEPORT: a second server on a busy port starts without a
        # word and the two share the traffic, so refuse instead.
        if stun.answers(self.address):
            raise PortBusy(f"something already answers STUN on {HOST}:{self.port}")
        self._process = process.spawn(self._command(), self.log_path)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop turnserver (a no-op if it is not running)."""
        child, self._process = self._process, None
        if child is not None:
            process.terminate(child)

    def close(self) -> None:
        """Stop and remove the temp dir."""
        self.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _command(self) -> list[str]:
        d = self.log_path.parent
        command = [
            binaries.find("turnserver"), "-n",
            f"--listening-ip={HOST}", f"--listening-port={self.port}",
            "--stun-only", "--no-tls", "--no-dtls", "--no-cli", "--fingerprint",
            f"--pidfile={d / 'turnserver.pid'}", f"--userdb={d / 'turndb'}",
            "--log-file=stdout", "--simple-log",
        ]  # fmt: skip
        return process.unprivileged(command)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"turnserver exited at start:\n{process.tail(self.log_path)}")
            if stun.answers(self.address, timeout=0.1):
                return
        raise TimeoutError(
            f"turnserver not ready after {timeout} s:\n{process.tail(self.log_path)}"
        )
