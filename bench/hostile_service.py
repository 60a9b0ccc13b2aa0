"""The service under attack: a fresh `intercom-sip serve` process, and what we watch of it.

One `Service` per finding, so that figures never mix. `Watch` samples the process's RSS
every 100 ms, counts the log lines it writes and runs the latency probe (hostile_probe.py,
a process of its own) for as long as the attack lasts.
"""

import hashlib
import http.client
import json
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

HERE = Path(__file__).resolve().parent
READY = re.compile(rb"intercom-sip ready on http://([0-9.]+):(\d+)")
LOG_KEEP = 65536  # bytes of the log's start (the ready line) and of its end, kept
PROBE_EVERY = 0.2
RSS_EVERY = 0.1
FACTORY_MD5 = hashlib.md5(b"123456").hexdigest()  # noqa: S324 (the vendor's login)


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on `host` for both UDP and TCP (the SIP port is both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free port")


class Service:
    """`intercom-sip serve` on 127.0.0.1, a free port, a fresh data directory."""

    def __init__(
        self, nofile: int | None, sip_host: str = "127.0.0.1", extra: tuple[str, ...] = ()
    ) -> None:
        self.nofile, self.sip_host, self.extra = nofile, sip_host, extra
        self.sip_port = free_port(sip_host)
        self.port = 0
        self.lines = 0
        self.log_bytes = 0
        self._head = b""
        self._tail = b""
        self._ready = threading.Event()
        self._dir = tempfile.TemporaryDirectory(prefix="hostile-")
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "Service":
        command = [
            *([f"--nofile={self.nofile}:{self.nofile}"] if self.nofile else []),
            sys.executable,
            "-m",
            "intercom_sip",
            "serve",
            "--port",
            "0",
            "--data-dir",
            self._dir.name,
            "--sip-host",
            self.sip_host,
            "--sip-port",
            str(self.sip_port),
            *self.extra,
        ]
        if self.nofile:
            command.insert(0, "prlimit")
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(30):
            self._stop()
            raise RuntimeError("the service did not start:\n" + self.log_tail())
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self._stop()

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        stream = self.process.stdout
        while chunk := stream.read1(65536):  # type: ignore[attr-defined]
            self.lines += chunk.count(b"\n")
            self.log_bytes += len(chunk)
            self._tail = (self._tail + chunk)[-LOG_KEEP:]
            if not self._ready.is_set() and len(self._head) < LOG_KEEP:
                self._head += chunk
                match = READY.search(self._head)
                if match:
                    self.port = int(match[2])
                    self._ready.set()

    def _stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._dir.cleanup()

    def log_tail(self) -> str:
        return self._tail.decode("utf-8", "replace")[-2000:]

    def log_tail_all(self) -> str:
        """The log's last 64 KiB."""
        return self._tail.decode("utf-8", "replace")

    def rss_mb(self) -> float:
        assert self.process is not None
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return 0.0
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        return int(match[1]) / 1024 if match else 0.0

    # --- a small client -----------------------------------------------------------------

    def call(
        self, method: str, path: str, token: str = "", body: bytes | None = None
    ) -> tuple[int, Any, float]:
        """Status, JSON answer and seconds taken, on a connection of its own."""
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            connection.request(method, path, body=body, headers=headers)
            reply = connection.getresponse()
            raw = reply.read()
        finally:
            connection.close()
        return reply.status, json.loads(raw or b"null"), time.perf_counter() - started

    def login(self) -> str:
        status, answer, _ = self.call(
            "GET", f"/api/v1/login?username=admin&password={FACTORY_MD5}"
        )
        if status != 200:
            raise RuntimeError(f"login answered {status}: {answer}")
        return str(answer["token"])


@dataclass(frozen=True)
class Latency:
    """The probe's figures, in ms."""

    answered: tuple[float, ...]
    failed: int

    @property
    def worst(self) -> float:
        """The slowest answer; a failed probe counts as the probe's whole timeout."""
        return 2000.0 if self.failed else max(self.answered, default=0.0)

    def text(self) -> str:
        if not self.answered:
            return f"no answer ({self.failed} probes failed)"
        ordered = sorted(self.answered)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        failed = f", {self.failed} of {self.failed + len(ordered)} failed" if self.failed else ""
        return (
            f"p50 {statistics.median(ordered):.1f} / p99 {p99:.1f} / max {ordered[-1]:.1f} ms"
            f"{failed}"
        )


class Watch:
    """RSS peak, log lines and the API's latency while the `with` block runs."""

    def __init__(self, service: Service, rss_ceiling: float) -> None:
        self.service, self.rss_ceiling = service, rss_ceiling
        self.peak = self.start_rss = service.rss_mb()
        self.lines = self.log_bytes = 0
        self.seconds = 0.0
        self.latency = Latency((), 0)
        self.over_ceiling = threading.Event()
        self._done = threading.Event()

    def __enter__(self) -> "Watch":
        self._lines0, self._bytes0 = self.service.lines, self.service.log_bytes
        self._started = time.monotonic()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        self._probe = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "hostile_probe.py"),
                "127.0.0.1",
                str(self.service.port),
                str(PROBE_EVERY),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType
    ) -> None:
        self.seconds = time.monotonic() - self._started
        self.lines = self.service.lines - self._lines0
        self.log_bytes = self.service.log_bytes - self._bytes0
        self._done.set()
        self._sampler.join(5)
        try:
            output, _ = self._probe.communicate(timeout=10)  # closing stdin stops it
        except subprocess.TimeoutExpired:
            self._probe.kill()
            output, _ = self._probe.communicate()
        latencies: list[float | None] = json.loads(output or b"[]")
        answered = tuple(figure for figure in latencies if figure is not None)
        self.latency = Latency(answered, len(latencies) - len(answered))

    def _sample(self) -> None:
        while not self._done.wait(RSS_EVERY):
            rss = self.service.rss_mb()
            self.peak = max(self.peak, rss)
            if rss > self.rss_ceiling:
                self.over_ceiling.set()

    def peak_text(self) -> str:
        stopped = f" (stopped at the {self.rss_ceiling:.0f} MB ceiling)" if self.stopped else ""
        return f"{self.peak:.0f} MB (from {self.start_rss:.0f}){stopped}"

    @property
    def stopped(self) -> bool:
        return self.over_ceiling.is_set()


def needs() -> str | None:
    """What is missing to run the bench here, if anything."""
    if not Path("/proc/self/status").exists():
        return "needs Linux (/proc) to read the service's RSS"
    if shutil.which("prlimit") is None:
        return "needs prlimit (util-linux) to start the service with a low file limit"
    return None
