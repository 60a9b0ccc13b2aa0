"""A building as a user runs it: `intercom-sip serve --devices N --first-address A`, one
process, at addresses of a loopback block picked at random and reserved for the run."""

import contextlib
import fcntl
import ipaddress
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from intercom_sip.admin import credentials as auth
from tests.peers.ports import free_port, free_tcp_port

READY = re.compile(r"intercom-sip ready on http://\S+")
BLOCKS = Path(tempfile.gettempdir()) / "intercom-sip-test-blocks"
_pick = random.SystemRandom()
_held: list[int] = []  # the descriptors holding this process's blocks, for its life


def loopback_block(devices: int) -> ipaddress.IPv4Address:
    """The first of `devices` consecutive 127.x.y.z addresses (x.y at random, z from 0),
    each /24 of it reserved by a lock file (for this process's life) so that no other test
    process of the machine picks it meanwhile."""
    blocks = (devices + 255) // 256
    BLOCKS.mkdir(exist_ok=True)
    while True:
        x, y = _pick.randint(64, 250), _pick.randrange(0, 256 - blocks + 1)
        taken = [fd for fd in (_lock(f"{x}.{y + i}") for i in range(blocks)) if fd is not None]
        if len(taken) == blocks:
            _held.extend(taken)
            return ipaddress.IPv4Address(f"127.{x}.{y}.0")
        for fd in taken:
            os.close(fd)


def _lock(name: str) -> int | None:
    fd = os.open(BLOCKS / name, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


class Building:
    """`devices` monitors in one `intercom-sip serve` process."""

    def __init__(self, data_dir: Path, devices: int, *options: str) -> None:
        self.data_dir, self.devices, self.options = data_dir, devices, options
        self.first = loopback_block(devices)
        self.port = free_tcp_port()
        self.sip_port = free_port(both=True)
        self.lines: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self._ready = threading.Event()

    def address(self, index: int) -> str:
        return str(self.first + index)

    def url(self, index: int) -> str:
        return f"http://{self.address(index)}:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "intercom_sip",
            "serve",
            "--devices",
            str(self.devices),
            "--first-address",
            str(self.first),
            "--port",
            str(self.port),
            "--sip-port",
            str(self.sip_port),
            "--data-dir",
            str(self.data_dir),
            *self.options,
        ]

    def start(self, timeout: float = 60.0) -> "Building":
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise AssertionError("not ready:\n" + self.log[-5000:])
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if READY.search(line):
                self._ready.set()

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def stop(self) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(5)
        self._reader.join(5)
        assert self.process.stdout is not None
        with contextlib.suppress(OSError):
            self.process.stdout.close()
        return code

    # --- a small client ---

    def call(
        self, index: int, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url(index) + path, data=data, method=method)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                status, raw = reply.status, reply.read()
        except urllib.error.HTTPError as reply:
            status, raw = reply.code, reply.read()
        return status, json.loads(raw)

    def login(self, index: int, password: str = "123456") -> str:
        status, answer = self.call(
            index, "GET", f"/api/v1/login?username=admin&password={auth.md5_hex(password)}"
        )
        assert status == 200, answer
        token: str = answer["token"]
        return token
