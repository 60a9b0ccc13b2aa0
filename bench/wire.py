"""SIP messages and the API's HTTP as they pass on lo, with the kernel's capture times.

One live `tshark` (its `dumpcap` child does the capturing) on interface lo, with a BPF
filter on the registrar's ports, decodes SIP over UDP, TCP and TLS (decrypted with the
key log file the TLS clients write through SSLKEYLOGFILE) and prints one line per SIP
message. A reader thread keeps them in order; `wait()` blocks until one matches.

The timestamps are those of the capture (CLOCK_REALTIME, taken by the kernel when the
packet crossed lo), not the moment tshark printed the line: tshark's own delay, which
dumpcap's buffering makes up to a few hundred ms, never enters a figure.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

FIELDS = (
    "frame.time_epoch",
    "sip.Method",
    "sip.Status-Code",
    "sip.CSeq.seq",
    "sip.CSeq.method",
    "sip.Call-ID",
    "sip.from.user",
    "sip.auth.username",
    "sip.auth.nonce",
    "sip.auth.nc",
    "http.request.method",
    "http.response.code",
)


@dataclass(frozen=True)
class Sip:
    """One SIP message seen on the wire."""

    time: float  # the capture timestamp, Unix seconds
    method: str  # a request's method; "" for a response
    status: int  # a response's code; 0 for a request
    cseq: int
    cseq_method: str
    call_id: str
    from_user: str
    auth_user: str  # "" when the request carries no Authorization
    nonce: str
    nc: str
    http: str  # on the HTTP port: the request's method or the response's code; else ""

    @staticmethod
    def parse(line: str) -> Sip | None:
        values = line.rstrip("\n").split("\t")
        if len(values) != len(FIELDS) or not values[0]:
            return None
        # One field per message: a frame holding two SIP messages keeps the first.
        first = [value.split(",")[0] for value in values]
        return Sip(
            time=float(first[0]),
            method=first[1],
            status=int(first[2] or 0),
            cseq=int(first[3] or 0),
            cseq_method=first[4],
            call_id=first[5],
            from_user=first[6],
            auth_user=first[7].strip('"'),
            nonce=first[8].strip('"'),
            nc=first[9],
            http=first[10] or first[11],
        )


class Capture:
    """A live capture on lo of SIP to and from a registrar's UDP/TCP and TLS ports, and of
    HTTP on `http_port` (the SIP fields are then empty)."""

    def __init__(self, sip_port: int, tls_port: int, http_port: int, keylog: Path) -> None:
        self._command = [
            "tshark",
            "-l",
            "-n",
            "-i",
            "lo",
            "-f",
            f"port {sip_port} or port {tls_port} or tcp port {http_port}",
            "-o",
            f"tls.keylog_file:{keylog}",
            "-d",
            f"udp.port=={sip_port},sip",
            "-d",
            f"tcp.port=={sip_port},sip",
            "-d",
            f"tcp.port=={tls_port},tls",
            "-d",
            f"tls.port=={tls_port},sip",
            "-d",
            f"tcp.port=={http_port},http",
            "-Y",
            "sip or http",
            "-T",
            "fields",
            "-E",
            "separator=/t",
            "-E",
            "occurrence=a",
        ]
        for name in FIELDS:
            self._command += ["-e", name]
        self.messages: list[Sip] = []
        self._changed = threading.Condition()
        self._process: subprocess.Popen[str] | None = None
        self._errors: list[str] = []

    def start(self, timeout: float = 20.0) -> None:
        """Start tshark and return once it captures."""
        self._process = subprocess.Popen(
            self._command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_errors, args=(started,), daemon=True).start()
        if not started.wait(timeout):
            self.stop()
            raise SystemExit("tshark did not start capturing:\n" + "".join(self._errors))

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            message = Sip.parse(line)
            if message is not None:
                with self._changed:
                    self.messages.append(message)
                    self._changed.notify_all()

    def _read_errors(self, started: threading.Event) -> None:
        assert self._process is not None and self._process.stderr is not None
        for line in self._process.stderr:
            self._errors.append(line)
            if line.startswith("Capturing on"):
                started.set()

    def wait(self, match: Callable[[Sip], bool], timeout: float) -> Sip | None:
        """The first message seen (so far, or within `timeout`) that matches, else None."""
        deadline = time.monotonic() + timeout
        with self._changed:
            seen = 0
            while True:
                for message in self.messages[seen:]:
                    if match(message):
                        return message
                seen = len(self.messages)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)

    def stop(self) -> None:
        """End tshark (and its dumpcap)."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
