"""baresip 1.0.0 (Debian) as a softphone a call test drives: it registers at the Kamailio
fixture, dials, answers or rejects, sends and receives DTMF, and records what it hears.

It is driven over its `ctrl_tcp` module: netstring-framed JSON, one TCP connection,
commands `{"command": "dial", "params": "sip:...", "token": "..."}` answered with
`{"response": true, "ok": ..., "data": ..., "token": ...}`, and events such as
`{"event": true, "class": "call", "type": "CALL_ESTABLISHED", "id": ..., "param": ...}`.

What baresip 1.0.0 really offers (read in its v1.0.0 source, seen working here):

- The commands come from the `menu` module, which must be loaded even without a UI:
  `dial <uri>`, `accept`, `hangup`, `sndcode <digits>` (DTMF as RFC 4733 events; there is
  no `call/dtmf` in 1.0.0), `answermode manual|early|auto`, `listcalls`, `reginfo`.
- `hangup` on a ringing incoming call rejects it with `486 Rejected` (call_hangup's
  default); that is the "busy" callee here.
- Events: REGISTER_OK, REGISTER_FAIL, CALL_INCOMING, CALL_RINGING, CALL_PROGRESS,
  CALL_ESTABLISHED, CALL_CLOSED (param: the reason, e.g. "Connection reset by peer" or
  "end of file"), CALL_DTMF_START (param: the digit), CALL_DTMF_END, CALL_MENC (SRTP on).
- `aufile` is a source only: it plays a WAV and, at its end, closes the call ("end of
  file"), so the tone lasts as long as the longest call a test wants.
- `sndfile` is an audio filter: every call writes `dump-<time>-enc.wav` (what is sent)
  and `dump-<time>-dec.wav` (what was received and decoded) into `snd_path`.
- Without a player module no player is started; decoding and recording still happen.
- SIP over TLS listens on the SIP port + 1; `sip_cafile` is the CA it trusts.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from . import audio, binaries, ports, process

if TYPE_CHECKING:
    from .kamailio import Kamailio

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
Transport = Literal["udp", "tcp", "tls"]
Answer = Literal["auto", "manual", "busy"]
Event = dict[str, Any]

MODULES_DIR = "/usr/lib/baresip/modules"
# menu: the commands; ctrl_tcp: our control channel; account: reads the accounts file,
# and must come last, or a `mediaenc` or codec it names is not registered yet.
MODULES = ("menu", "ctrl_tcp", "g711", "aufile", "sndfile", "srtp", "account")
RTP_PAIRS = 4  # RTP/RTCP port pairs reserved for a baresip: more than the calls it holds
MAX_EVENTS = 1000  # events kept for a test to read; older ones are dropped
MAX_NETSTRING = 1 << 20
QUIT_GRACE = 1.0  # seconds baresip gets to unregister before the second SIGTERM
WAV_HEADER = 44  # bytes before the samples in sndfile's WAV files
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Registrar:
    """Where the account registers: the Kamailio fixture's address and its CA."""

    sip_port: int
    tls_port: int
    ca_cert: Path | None = None
    host: str = HOST

    @classmethod
    def of(cls, server: Kamailio) -> Registrar:
        """The Kamailio fixture as a registrar: its ports and the CA of its certificate."""
        return cls(server.sip_port, server.tls_port, server.ca_cert)

    def uri_port(self, transport: Transport) -> int:
        """The port for `transport`."""
        return self.tls_port if transport == "tls" else self.sip_port


@dataclass(frozen=True)
class Account:
    """A SIP account of baresip. `srtp` offers SDES-SRTP (`mediaenc=srtp`, RTP/SAVP)."""

    user: str
    password: str = field(repr=False)
    transport: Transport = "udp"
    answer: Answer = "auto"
    srtp: bool = False

    def line(self, registrar: Registrar) -> str:
        """The line of baresip's `accounts` file."""
        port = registrar.uri_port(self.transport)
        # answermode busy is ours: manual, and the fixture rejects every incoming call.
        mode = "manual" if self.answer == "busy" else self.answer
        params = [
            f"auth_pass={self.password}",
            f"answermode={mode}",
            "regint=600",
        ]
        if self.srtp:
            params.append("mediaenc=srtp-mand")
        return f"<sip:{self.user}@{registrar.host}:{port};transport={self.transport}>;" + (
            ";".join(params)
        )


class BaresipError(RuntimeError):
    """baresip did not start, refused a command, or an awaited event never came."""


class Baresip(process.Peer):
    """One baresip with one account, its own config dir, tone and recordings.

    `tone_hz` is the frequency of the tone it sends, for `tone_seconds` (the call closes
    when the tone ends: aufile's end of file). `rtp_timeout` (s, 0: none) hangs up a call
    whose RTP stops, with CALL_CLOSED "rtp stream error".
    """

    def __init__(
        self,
        registrar: Registrar,
        account: Account,
        *,
        tone_hz: int = 1000,
        tone_seconds: float = 30.0,
        rtp_timeout: int = 0,
    ) -> None:
        self.registrar = registrar
        self.rtp_timeout = rtp_timeout
        self.account = account
        self.tone_hz = tone_hz
        self.tone_seconds = tone_seconds
        self.sip_port = 0
        self.ctrl_port = 0
        self.rtp_ports = (0, 0)  # the first and last port of its RTP range
        self.events: deque[Event] = deque(maxlen=MAX_EVENTS)
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._responses: queue.Queue[Event] = queue.Queue(maxsize=100)
        self._changed = threading.Condition()
        self._tokens = itertools.count(1)
        self._send_lock = threading.Lock()

    # -- paths

    @property
    def directory(self) -> Path:
        """The private dir: config, accounts, tone.wav, recordings/, baresip.log."""
        if self._dir is None:
            self._dir = process.private_dir("baresip-")
        return self._dir

    @property
    def log_path(self) -> Path:
        """baresip's stdout and stderr."""
        return self.directory / "baresip.log"

    @property
    def recordings_dir(self) -> Path:
        """Where sndfile writes dump-*-dec.wav (heard) and dump-*-enc.wav (sent)."""
        return self.directory / "recordings"

    @property
    def aor(self) -> str:
        """The account's address of record, e.g. sip:102@127.0.0.1:5060."""
        port = self.registrar.uri_port(self.account.transport)
        return f"sip:{self.account.user}@{self.registrar.host}:{port}"

    def uri(self, user: str) -> str:
        """A SIP URI for `user` at the registrar (baresip adds its account's transport)."""
        port = self.registrar.uri_port(self.account.transport)
        return f"sip:{user}@{self.registrar.host}:{port}"

    # -- life cycle

    def start(self, timeout: float = 30.0) -> None:
        """Start baresip, connect to ctrl_tcp, and return once the account registered."""
        if self._process is not None:
            return
        self._prepare()
        self._process = process.spawn(self._command(), self.log_path)
        try:
            self._connect(timeout)
            self._wait_registered(timeout)
            self._check_account()
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 5.0) -> None:
        """Close the control connection and stop baresip (it unregisters on SIGTERM)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._reader is not None:
            self._reader.join(timeout)
            self._reader = None
        child, self._process = self._process, None
        if child is not None:
            _quit(child, timeout)

    def close(self) -> None:
        """Stop and remove the temp dir."""
        self.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    @property
    def running(self) -> bool:
        """Whether the baresip process is alive."""
        return self._process is not None and self._process.poll() is None

    def log_text(self) -> str:
        """Everything baresip has printed so far (keep it in a failing test's message)."""
        return self.log_path.read_text(errors="replace") if self._dir else ""

    # -- commands

    def command(self, name: str, params: str = "", timeout: float = 10.0) -> str:
        """Run a menu command over ctrl_tcp; its printed output, or BaresipError."""
        token = f"t{next(self._tokens)}"
        message: Event = {"command": name, "token": token}
        if params:
            message["params"] = params
        self._send(message)
        deadline = time.monotonic() + timeout
        while True:
            try:
                response = self._responses.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BaresipError(f"no answer to {name!r} in {timeout} s") from None
            if response.get("token") == token:
                break
        if not response.get("ok"):
            raise BaresipError(f"{name} {params!r} failed: {response.get('data')!r}")
        return str(response.get("data", ""))

    def dial(self, uri: str) -> None:
        """Call `uri` (through the registrar when it names the registrar)."""
        self.command("dial", uri)

    def accept(self) -> None:
        """Answer the ringing incoming call."""
        self.command("accept")

    def hangup(self) -> None:
        """End the current call: BYE, CANCEL, or 486 for a ringing incoming one."""
        self.command("hangup")

    def send_dtmf(self, digits: str) -> None:
        """Send `digits` in the current call as RFC 4733 telephone-events."""
        self.command("sndcode", digits)

    # -- events

    def wait_event(self, kind: str, timeout: float = 15.0, *, after: int = 0) -> Event:
        """The first event of type `kind` (e.g. "CALL_ESTABLISHED") from index `after` on."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = self._find(kind, after)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or not self.running:
                    break
                self._changed.wait(min(left, 0.5))
        seen = [e.get("type") for e in list(self.events)]
        raise BaresipError(
            f"no {kind} event within {timeout} s (seen {seen});"
            f" log:\n{process.tail(self.log_path, 40)}"
        )

    def event_types(self) -> list[str]:
        """The types of the events seen so far, in order."""
        return [str(e.get("type")) for e in list(self.events)]

    def received_digits(self) -> str:
        """The DTMF digits received so far (CALL_DTMF_START events)."""
        return "".join(
            str(e.get("param", ""))
            for e in list(self.events)
            if e.get("type") == "CALL_DTMF_START"
        )

    def recordings(self, kind: Literal["dec", "enc"] = "dec") -> list[Path]:
        """sndfile's recordings of `kind`, oldest first: dec = heard, enc = sent."""
        return sorted(self.recordings_dir.glob(f"dump-*-{kind}.wav"))

    def wait_heard(self, seconds: float = 1.0, timeout: float = 15.0) -> None:
        """Wait until the current call's recording holds `seconds` of received audio."""
        want = WAV_HEADER + round(seconds * audio.RATE) * 2
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.recordings("dec")
            if found and found[-1].stat().st_size >= want:
                return
            time.sleep(0.05)
        raise BaresipError(f"{self.account.user} did not hear {seconds} s within {timeout} s")

    def heard(self) -> audio.Recording:
        """What the last call brought in (the newest dec recording).

        sndfile completes the WAV header when the call closes: read it after CALL_CLOSED.
        """
        found = self.recordings("dec")
        if not found:
            raise BaresipError(f"no recording in {self.recordings_dir}")
        return audio.read_wav(found[-1])

    def registered(self) -> bool:
        """Whether `reginfo` shows the account registered (200 OK from the registrar)."""
        # It prints "> sip:201@127.0.0.1:5060   OK  kamailio ... Expires 600s", with colours.
        text = _ANSI.sub("", self.command("reginfo"))
        return re.search(r"^> \S+\s+OK\s", text, re.MULTILINE) is not None

    # -- internals

    def _check_account(self) -> None:
        # baresip only warns about an account parameter it cannot use, then goes on.
        refused = [line for line in self.log_text().splitlines() if "not found" in line]
        if refused:
            raise BaresipError(f"baresip ignored part of the account: {refused}")

    def _wait_registered(self, timeout: float) -> None:
        # Polled: REGISTER_OK may come before the control connection is up.
        deadline = time.monotonic() + timeout
        while not self.registered():
            if time.monotonic() > deadline:
                raise BaresipError(
                    f"{self.aor} not registered after {timeout} s:\n{process.tail(self.log_path)}"
                )
            time.sleep(0.1)

    def _find(self, kind: str, after: int) -> Event | None:
        for event in itertools.islice(list(self.events), after, None):
            if event.get("type") == kind:
                return event
        return None

    def _prepare(self) -> None:
        d = self.directory
        self.recordings_dir.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            os.chown(self.recordings_dir, *process.NOBODY)
        samples = audio.tone(self.tone_hz, self.tone_seconds)
        audio.write_wav(d / "tone.wav", samples)
        self.sip_port = ports.free_span(2, both=True)  # TLS listens on P + 1
        self.ctrl_port = ports.free_tcp_port()
        self.rtp_ports = ports.rtp_range(RTP_PAIRS)
        (d / "config").write_text(self._config())
        (d / "accounts").write_text(self.account.line(self.registrar) + "\n")
        for path in d.iterdir():
            if path.is_file():
                path.chmod(0o644)  # nobody must read them; a test password only

    def _config(self) -> str:
        lines = {
            "poll_method": "epoll",
            "sip_listen": f"{HOST}:{self.sip_port}",
            "net_interface": HOST,
            # Reserved for it: its default range, 1024-49152, holds the ports the tests
            # reserve (tests/peers/ports.py), and a call's random RTP port took one that
            # another test's monitor was about to bind.
            "rtp_ports": "{}-{}".format(*self.rtp_ports),
            "audio_source": f"aufile,{self.directory / 'tone.wav'}",
            "audio_alert": "",
            "audio_player": "",
            "rtp_timeout": str(self.rtp_timeout) if self.rtp_timeout else "",
            "ctrl_tcp_listen": f"{HOST}:{self.ctrl_port}",
            "snd_path": str(self.recordings_dir),
            "module_path": MODULES_DIR,
        }
        if self.registrar.ca_cert is not None:
            lines["sip_cafile"] = str(self.registrar.ca_cert)
        text = [f"{key}\t{value}".rstrip() for key, value in lines.items() if value]
        text += [f"module\t{name}.so" for name in MODULES]
        return "\n".join(text) + "\n"

    def _command(self) -> list[str]:
        command = [binaries.find("baresip"), "-4", "-f", str(self.directory)]
        return process.unprivileged(command)

    def _connect(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise BaresipError(f"baresip exited at start:\n{process.tail(self.log_path)}")
            try:
                self._sock = socket.create_connection((HOST, self.ctrl_port), timeout=1.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BaresipError(
                        f"ctrl_tcp not listening after {timeout} s:\n{process.tail(self.log_path)}"
                    ) from None
                time.sleep(0.05)
        self._sock.settimeout(None)
        self._reader = threading.Thread(target=self._read_loop, args=(self._sock,), daemon=True)
        self._reader.start()

    def _send(self, message: Event) -> None:
        if self._sock is None:
            raise BaresipError("baresip is not running")
        data = json.dumps(message).encode()
        with self._send_lock:
            self._sock.sendall(b"%d:%s," % (len(data), data))

    def _read_loop(self, sock: socket.socket) -> None:
        buffer = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            try:
                messages, buffer = split_netstrings(buffer)
            except BaresipError as error:  # a thread must not raise: pytest fails on that
                log.error("%s; closing the control connection", error)
                return
            for message in messages:
                self._dispatch(message)

    def _dispatch(self, raw: bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            log.warning("baresip sent a non-JSON netstring: %r", raw[:200])
            return
        if message.get("response"):
            with contextlib.suppress(queue.Full):
                self._responses.put_nowait(message)
            return
        if message.get("event"):
            if message.get("type") == "CALL_INCOMING" and self.account.answer == "busy":
                # Reject from here, at once: hangup of a ringing call answers 486.
                with contextlib.suppress(OSError, BaresipError):
                    self._send({"command": "hangup", "token": "busy"})
            with self._changed:
                self.events.append(message)
                self._changed.notify_all()


def _quit(child: subprocess.Popen[bytes], timeout: float) -> None:
    # The first SIGTERM unregisters and waits for every SIP transaction to end, which
    # after a CANCEL is Timer D (32 s over UDP); a second one makes baresip exit at once.
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(QUIT_GRACE)
    process.terminate(child, timeout)


def split_netstrings(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The complete netstrings (`<len>:<data>,`) at the start of `buffer`, and the rest."""
    messages: list[bytes] = []
    while True:
        colon = buffer.find(b":", 0, 12)
        if colon < 0:
            if len(buffer) >= 12:
                raise BaresipError(f"bad netstring from baresip: {buffer[:20]!r}")
            return messages, buffer
        length = int(buffer[:colon])
        if length > MAX_NETSTRING:
            raise BaresipError(f"netstring of {length} bytes from baresip")
        end = colon + 1 + length
        if len(buffer) < end + 1:
            return messages, buffer
        if buffer[end : end + 1] != b",":
            raise BaresipError(f"netstring without its comma: {buffer[: end + 1][:40]!r}")
        messages.append(buffer[colon + 1 : end])
        buffer = buffer[end + 1 :]
