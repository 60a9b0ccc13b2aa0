"""linphone 5.1 (Debian's `linphone-cli`, `linphonec`) as a second SIP stack a call test
drives: it registers at the Kamailio fixture, dials, answers, sends and receives DTMF,
and records what it hears.

linphonec is driven over its standard input, one command a line, and read from its
standard output, which it flushes line by line:

- `soundcard use files` puts it in file mode (there is no sound card here); then
  `play <wav>` is what it sends (instead of the microphone) and `record <wav>` where it
  writes what it hears. Neither is a config key: they are commands, sent at start.
- `autoanswer enable`, `call <uri>`, `answer`, `terminate`, `status register`, `quit`.
- During a call a line holding one character of `0-9*#A-D` sends that DTMF digit.
- It prints what happens: "Receiving new incoming call from <uri>, assigned id 1",
  "Call 1 to <uri> ringing.", "Call 1 with <uri> connected.", "Media streams established
  with <uri> for call 1 (audio).", "Receiving tone 5 from <uri>", "Call 1 with <uri>
  ended (<reason>).", often after the "linphonec> " prompt on the same line.
- A refused registration makes it ask "Password for <user> on <realm>: " and read the
  next line of standard input as the password: the fixture fails on that prompt. It
  learns the registration state only by sending `status register`, so a prompt printed
  just after its last look and before that command takes the command as the password
  (which is refused again): the fixture waits on the output between its polls to make
  that window small, and fails the same way when it happens.
- It keeps its state under $HOME (`.local/share/linphone/linphone.db`, `.config`, a ZRTP
  cache) and rewrites its config file on exit: HOME is the private dir, owned by nobody.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import struct
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO

from . import audio, binaries, process
from .baresip import Account, Registrar

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAX_LINES = 2000  # output lines kept for a test to read; older ones are dropped
POLL = 0.1  # seconds between two `status register` while not registered
QUIT_GRACE = 3.0  # seconds linphonec gets to unregister and exit after `quit`
WAV_HEADER = 44
DTMF = frozenset("0123456789*#ABCD")
_PROMPT = re.compile(r"^(?:linphonec> )+")
PASSWORD_PROMPT = "^Password for "

# What linphonec prints, as patterns over one output line (its prompt stripped).
INCOMING = r"Receiving new incoming call from (?P<uri>\S+), assigned id (?P<id>\d+)"
RINGING = r"Call (?P<id>\d+) to (?P<uri>\S+) ringing\."
CONNECTED = r"Call (?P<id>\d+) with (?P<uri>\S+) connected\."
MEDIA = r"Media streams established with (?P<uri>\S+) for call (?P<id>\d+) \((?P<kinds>.*)\)\."
ENDED = r"Call (?P<id>\d+) with (?P<uri>\S+) ended \((?P<reason>.*)\)\."
TONE = r"Receiving tone (?P<digit>\S) from (?P<uri>\S+)"
REGISTER_STATUS = r"^(?:registered, |unregistered|registered=-1)"


class LinphoneError(RuntimeError):
    """linphonec did not start or register, or an awaited line never came."""


class Lines:
    """The output lines seen so far, at most `limit` of them, numbered from the first.

    The numbers stay absolute when old lines are dropped, so `find(after=n)` still means
    "printed after line n".
    """

    def __init__(self, limit: int = MAX_LINES) -> None:
        self._lines: deque[str] = deque(maxlen=limit)
        self._count = 0
        self.changed = threading.Condition()

    @property
    def count(self) -> int:
        """How many lines have been added in all."""
        return self._count

    def add(self, line: str) -> None:
        """Add one line (its prompt stripped) and wake the waiters."""
        with self.changed:
            self._lines.append(_PROMPT.sub("", line))
            self._count += 1
            self.changed.notify_all()

    def find(self, pattern: str, after: int = 0) -> list[re.Match[str]]:
        """The matches of `pattern` in the kept lines numbered `after` or later."""
        with self.changed:
            first = self._count - len(self._lines)
            kept = list(self._lines)[max(0, after - first) :]
        return [m for m in map(re.compile(pattern).search, kept) if m is not None]


class Linphone(process.Peer):
    """One linphonec with one account, its own HOME, tone and recording.

    `account.answer` is "auto" (linphonec's autoanswer) or "manual" (`accept()`);
    `account.transport` "udp" or "tcp". `tone_hz` is the tone it sends for
    `tone_seconds`; `recording` is what it heard in its last call.
    """

    def __init__(
        self,
        registrar: Registrar,
        account: Account,
        *,
        tone_hz: int = 1000,
        tone_seconds: float = 30.0,
    ) -> None:
        if account.transport not in ("udp", "tcp") or account.answer == "busy" or account.srtp:
            raise LinphoneError(f"this fixture drives UDP/TCP, auto/manual only: {account}")
        self.registrar = registrar
        self.account = account
        self.tone_hz = tone_hz
        self.tone_seconds = tone_seconds
        self.lines = Lines()
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._stdin_lock = threading.Lock()

    # -- paths

    @property
    def directory(self) -> Path:
        """The private dir, also linphonec's HOME: linphonerc, tone.wav, heard.wav, log."""
        if self._dir is None:
            self._dir = process.private_dir("linphone-")
        return self._dir

    @property
    def log_path(self) -> Path:
        """linphonec's stdout and stderr."""
        return self.directory / "linphonec.log"

    @property
    def recording(self) -> Path:
        """The WAV file `record` names: what the last call brought in."""
        return self.directory / "heard.wav"

    @property
    def aor(self) -> str:
        """The account's address of record, e.g. sip:201@127.0.0.1:5060."""
        return f"sip:{self.account.user}@{self.registrar.host}:{self.registrar.sip_port}"

    def uri(self, user: str) -> str:
        """A SIP URI for `user` at the registrar, over the account's transport."""
        host, port = self.registrar.host, self.registrar.sip_port
        return f"sip:{user}@{host}:{port};transport={self.account.transport}"

    # -- life cycle

    def start(self, timeout: float = 30.0) -> None:
        """Start linphonec in file mode and return once the account is registered."""
        if self._process is not None:
            return
        self._prepare()
        self._process = self._spawn()
        try:
            self.command("soundcard use files")
            self.command(f"play {self.directory / 'tone.wav'}")
            self.command(f"record {self.recording}")
            if self.account.answer == "auto":
                self.command("autoanswer enable")
            self._wait_registered(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 5.0) -> None:
        """`quit` (it unregisters), then SIGTERM and SIGKILL if it lingers."""
        child, self._process = self._process, None
        if child is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._write(child, "quit")
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(QUIT_GRACE)
        process.terminate(child, timeout)
        if self._reader is not None:
            self._reader.join(timeout)  # it reads to the end of the output
            self._reader = None
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def close(self) -> None:
        """Stop and remove the temp dir."""
        self.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    @property
    def running(self) -> bool:
        """Whether linphonec is alive."""
        return self._process is not None and self._process.poll() is None

    def log_text(self) -> str:
        """Everything linphonec has printed so far (keep it in a failing test's message)."""
        return self.log_path.read_text(errors="replace") if self._dir else ""

    # -- commands

    def command(self, line: str) -> int:
        """Send one command line; the number of output lines before it (for `wait`)."""
        if self._process is None:
            raise LinphoneError("linphonec is not running")
        mark = self.lines.count
        try:
            self._write(self._process, line)
        except (OSError, ValueError) as error:
            raise LinphoneError(f"linphonec took no {line!r}: {error}\n{self._tail()}") from None
        return mark

    def dial(self, uri: str) -> None:
        """Call `uri` (through the registrar when it names the registrar)."""
        self.command(f"call {uri}")

    def accept(self) -> None:
        """Answer the ringing incoming call."""
        self.command("answer")

    def hangup(self) -> None:
        """End the current call (BYE once established)."""
        self.command("terminate")

    def send_dtmf(self, digits: str) -> None:
        """Send `digits` in the current call, one line each (RFC 4733 by default)."""
        for digit in digits:
            if digit not in DTMF:
                raise LinphoneError(f"not a DTMF digit: {digit!r}")
            self.command(digit)

    # -- what it printed

    def wait(self, pattern: str, timeout: float = 15.0, *, after: int = 0) -> re.Match[str]:
        """The first output line from number `after` on that matches `pattern`."""
        deadline = time.monotonic() + timeout
        with self.lines.changed:
            while True:
                found = self.lines.find(pattern, after)
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0 or not self.running:
                    break
                self.lines.changed.wait(min(left, 0.5))
        raise LinphoneError(
            f"linphonec printed no {pattern!r} within {timeout} s:\n{self._tail()}"
        )

    def received_digits(self) -> str:
        """The DTMF digits linphonec reported receiving ("Receiving tone X from ...")."""
        return "".join(m["digit"] for m in self.lines.find(TONE))

    def wait_heard(self, seconds: float = 1.0, timeout: float = 15.0) -> None:
        """Wait until the recording holds `seconds` of received audio."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # The header (rate included) is written at the call's end; until then the
            # rate is G.711's, all the monitor speaks.
            rate = _wav_rate(self.recording) or audio.RATE
            if (
                self.recording.exists()
                and self.recording.stat().st_size >= WAV_HEADER + round(seconds * rate) * 2
            ):
                return
            time.sleep(0.05)
        size = self.recording.stat().st_size if self.recording.exists() else None
        raise LinphoneError(
            f"{self.account.user} did not hear {seconds} s within {timeout} s"
            f" ({self.recording.name}: {size} bytes, rate {_wav_rate(self.recording)}):\n"
            f"{self._tail()}"
        )

    def heard(self) -> audio.Recording:
        """What the last call brought in.

        The WAV header's sizes are written when the call ends: read it after "ended".
        """
        if not self.recording.exists():
            raise LinphoneError(f"no recording at {self.recording}:\n{self._tail()}")
        return audio.read_wav(self.recording)

    def registered(self) -> bool:
        """Whether `status register` says the account is registered."""
        # It prints "registered, identity=<aor> duration=600", "unregistered" or, with no
        # default proxy, "registered=-1".
        mark = self.command("status register")
        answer = self.wait(f"{REGISTER_STATUS}|{PASSWORD_PROMPT}", 5, after=mark).group(0)
        return answer == "registered, "

    # -- internals

    def _tail(self) -> str:
        return process.tail(self.log_path, 40)

    def _wait_registered(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.lines.find(PASSWORD_PROMPT):  # it would read our next line as one
                raise LinphoneError(f"{self.aor} refused (wrong password?):\n{self._tail()}")
            if self.registered():
                return
            if time.monotonic() > deadline:
                raise LinphoneError(
                    f"{self.aor} not registered after {timeout} s:\n{self._tail()}"
                )
            # Wait on the output, not a clock, so that a prompt is seen as it comes.
            with contextlib.suppress(LinphoneError):
                self.wait(PASSWORD_PROMPT, POLL)

    def _prepare(self) -> None:
        d = self.directory
        data = d / ".local" / "share" / "linphone"  # linphone.db; without it, an error
        data.mkdir(parents=True)
        audio.write_wav(d / "tone.wav", audio.tone(self.tone_hz, self.tone_seconds))
        self.log_path.touch()  # the reader appends to it; a test may read it before
        (d / "linphonerc").write_text(self._config())
        (d / "linphonerc").chmod(0o600)  # a test password, but linphonec rewrites it
        if os.geteuid() == 0:
            for path in [d / ".local", d / ".local" / "share", data, *d.iterdir()]:
                os.chown(path, *process.NOBODY)

    def _config(self) -> str:
        """linphonerc: one transport on a port the kernel picks (-1), one proxy, all on
        127.0.0.1."""
        udp, tcp = ("-1", "0") if self.account.transport == "udp" else ("0", "-1")
        proxy = f"sip:{self.registrar.host}:{self.registrar.sip_port}"
        sections = {
            "sip": {
                "sip_port": udp,
                "sip_tcp_port": tcp,
                "sip_tls_port": "0",
                "bind_address": HOST,
                "default_proxy": "0",
                # Not gruu: Kamailio would grant a port-less GRUU (sip:201@127.0.0.1;gr=..),
                # linphone would put it in its dialogs' Contact, and Kamailio would relay
                # the ACK and BYE sent to it to 127.0.0.1:5060, where no one listens.
                "supported": "replaces, outbound",
            },
            # RTP and RTCP on random ports, on loopback only (else on every address).
            "rtp": {"audio_rtp_port": "-1", "bind_address": HOST},
            "video": {"capture": "0", "display": "0"},
            "proxy_0": {
                "reg_proxy": f"<{proxy};transport={self.account.transport}>",
                "reg_identity": self.aor,
                "reg_expires": "600",
                "reg_sendregister": "1",
            },
            "auth_info_0": {"username": self.account.user, "passwd": self.account.password},
        }
        return "".join(
            f"[{name}]\n" + "".join(f"{k}={v}\n" for k, v in keys.items()) + "\n"
            for name, keys in sections.items()
        )

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = ["env", f"HOME={self.directory}", "LANG=C"]
        command = [binaries.find("linphonec"), "-c", str(self.directory / "linphonerc")]
        child = subprocess.Popen(
            process.unprivileged([*env, *command]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert child.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(child.stdout,), daemon=True)
        self._reader.start()
        return child

    def _write(self, child: subprocess.Popen[bytes], line: str) -> None:
        if child.stdin is None:
            raise ValueError("no stdin")
        with self._stdin_lock:
            child.stdin.write(line.encode() + b"\n")
            child.stdin.flush()

    def _read(self, stdout: IO[bytes]) -> None:
        # Everything goes to the log as it comes (a prompt without its newline too); whole
        # lines go to `lines` for the waiters.
        partial = b""
        with self.log_path.open("ab") as log_file:
            while chunk := stdout.read1(65536):  # type: ignore[attr-defined]
                log_file.write(chunk)
                log_file.flush()
                *whole, partial = (partial + chunk).split(b"\n")
                for line in whole:
                    self.lines.add(line.decode(errors="replace").rstrip("\r"))
                if _PROMPT.sub("", partial.decode(errors="replace")).endswith(": "):
                    self.lines.add(partial.decode(errors="replace"))  # a question, waiting
                    partial = b""


def _wav_rate(path: Path) -> int:
    """The sample rate in a WAV file's header, 0 while there is no header yet."""
    try:
        with path.open("rb") as wav:
            header = wav.read(WAV_HEADER)
    except OSError:
        return 0
    if len(header) < WAV_HEADER or header[:4] != b"RIFF":
        return 0
    rate: int = struct.unpack_from("<I", header, 24)[0]
    return rate
