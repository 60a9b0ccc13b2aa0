"""The service as a separate process, as a user runs it: `intercom-sip serve`."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from intercom_sip.admin import credentials as auth
from tests.conformance import DOCUMENT

READY = re.compile(r"intercom-sip ready on (http://\S+)")


class Served:
    def __init__(
        self,
        data_dir: Path,
        *options: str,
        env: dict[str, str] | None = None,
        file_limit: int | None = None,
    ) -> None:
        """With `env`, the port and data directory come from the environment alone;
        `file_limit` lowers the process's open-file limit (RLIMIT_NOFILE)."""
        self.data_dir = data_dir
        self.options = options
        self.env = env
        self.file_limit = file_limit
        self.lines: list[str] = []
        self.url = ""
        self.process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 60.0) -> "Served":
        # Waits for the ready line, so a generous bound costs nothing: two suites side by
        # side beside other jobs on 2 cores once took 20 s to start the service (imports).
        command = [sys.executable, "-m", "intercom_sip", "serve", *self.options]
        if self.file_limit is not None:  # prlimit runs it in its own place: the same pid
            command = ["prlimit", f"--nofile={self.file_limit}", *command]
        if self.env is None:
            command += [
                "--port",
                "0",
                "--data-dir",
                str(self.data_dir),
                "--sip-host",
                "127.0.0.1",
                "--sip-port",
                "0",
            ]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(self.env or {})},
        )
        ready = threading.Event()
        self.reader = threading.Thread(target=self._read, args=(self.process, ready), daemon=True)
        self.reader.start()
        if not ready.wait(timeout):
            self.stop()
            raise AssertionError("not ready:\n" + self.log)
        return self

    def _read(self, process: subprocess.Popen[str], ready: threading.Event) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line)
            match = READY.search(line)
            if match:
                self.url = match[1]
                ready.set()

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        """SIGKILL: no chance to flush or close anything."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._close()

    def _close(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        self.reader.join(5)
        if not self.process.stdout.closed:
            self.process.stdout.close()

    def stop(self) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is not None:
            self._close()
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)
        finally:
            self._close()

    # --- a small client ---

    def call(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=15) as reply:
                status, headers, raw = reply.status, reply.headers.items(), reply.read()
        except urllib.error.HTTPError as reply:
            status, headers, raw = reply.code, reply.headers.items(), reply.read()
        DOCUMENT.check(method, path.partition("?")[0], status, headers, raw)
        return status, json.loads(raw)

    def login(self, password: str = "123456") -> str:
        status, answer = self.call(
            "GET", f"/api/v1/login?username=admin&password={auth.md5_hex(password)}"
        )
        assert status == 200, answer
        token: str = answer["token"]
        return token


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)
