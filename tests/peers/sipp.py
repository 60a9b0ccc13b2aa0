"""SIPp 3.6.1 running one call of a scenario from tests/peers/scenarios/, in its own dir.

Each run gets a private work dir holding a copy of the scenario, `tone.ulaw` (the RTP that
`rtp_stream` sends: headerless G.711 mu-law, since 3.6.1 sends the whole file as payload),
and SIPp's logs: the messages it sent and received (`-trace_msg`), the unexpected ones
(`-trace_err`) and its screen.

Debian's SIPp 3.6.1 is built without OpenSSL ("To use a TLS transport you must compile
SIPp with OpenSSL"): it speaks UDP and TCP only. A call that must reach the callee over
TLS goes SIPp -UDP-> Kamailio -TLS-> callee, on the flow the callee registered.

`Sipp` is a `process.Peer` for a callee (UAS) or a caller that runs while the test does
other things; `wait()` gives its exit code and logs. SIPp exits 0 when its one call went
through the scenario to the end, 1 when the call failed, 97/99 on internal errors.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from . import audio, binaries, kamcmd, ports, process

HOST = "127.0.0.1"
SCENARIOS = Path(__file__).parent / "scenarios"
Transport = Literal["udp", "tcp"]  # no TLS: Debian's SIPp is built without OpenSSL
_FLAG = {"udp": "u1", "tcp": "t1"}


@dataclass(frozen=True)
class SippResult:
    """How a SIPp run ended: its exit code and what it logged."""

    returncode: int
    messages: str  # every SIP message sent and received (-trace_msg)
    errors: str  # unexpected messages and scenario errors (-trace_err)
    screen: str  # its stdout and stderr

    @property
    def ok(self) -> bool:
        """Whether the call went through the whole scenario."""
        return self.returncode == 0

    def report(self) -> str:
        """Everything, for an assertion message."""
        return (
            f"sipp exit {self.returncode}\n--- errors\n{self.errors}\n"
            f"--- messages\n{self.messages}\n--- screen (tail)\n"
            + "\n".join(self.screen.splitlines()[-40:])
        )


class Sipp(process.Peer):
    """One call of `scenario` (a file name in scenarios/).

    `remote` is where a caller sends its INVITE (the proxy); a callee passes None and waits.
    `service` is the user a caller calls ([service]). `pause_ms` is what a `<pause/>` in the
    scenario waits (sipp -d). `timeout` bounds the whole run (sipp -timeout), so it must
    exceed the longest wait of the scenario (e.g. 130 s for a BYE expected at 120 s).
    `tone_hz`/`tone_seconds`: the PCMU file that rtp_stream loops. `keys`: `[name]`
    values of the scenario (sipp -key), e.g. a redirect's Contact.
    """

    def __init__(
        self,
        scenario: str,
        remote: tuple[str, int] | None = None,
        *,
        service: str = "",
        transport: Transport = "udp",
        pause_ms: int = 0,
        timeout: float = 60.0,
        tone_hz: int = 1000,
        tone_seconds: float = 2.0,
        keys: Mapping[str, str] | None = None,
    ) -> None:
        self.scenario = SCENARIOS / scenario
        if transport not in _FLAG:
            raise ValueError(f"SIPp here speaks {' and '.join(_FLAG)}, not {transport}")
        if not self.scenario.is_file():
            raise FileNotFoundError(f"no SIPp scenario {self.scenario}")
        self.remote = remote
        self.service = service
        self.transport = transport
        self.pause_ms = pause_ms
        self.timeout = timeout
        self.tone_hz = tone_hz
        self.tone_seconds = tone_seconds
        self.keys = dict(keys or {})
        self.port = ports.free_port(both=True)
        self.media_port = media_ports()
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def directory(self) -> Path:
        """The private work dir: scenario copy, tone.ulaw, logs."""
        if self._dir is None:
            self._dir = process.private_dir("sipp-")
        return self._dir

    @property
    def log_path(self) -> Path:
        """SIPp's screen output."""
        return self.directory / "sipp.log"

    def contact(self, user: str) -> str:
        """The SIP URI where this SIPp listens, as a registrar binding would hold it."""
        return f"sip:{user}@{HOST}:{self.port};transport={self.transport}"

    def start(self) -> None:
        """Start SIPp (a callee then waits for its INVITE)."""
        if self._process is not None:
            return
        d = self.directory
        shutil.copy(self.scenario, d / self.scenario.name)
        audio.write_mulaw(d / "tone.ulaw", audio.tone(self.tone_hz, self.tone_seconds))
        for path in d.iterdir():
            path.chmod(0o644)
        self._process = process.spawn(self._command(), self.log_path)

    @property
    def running(self) -> bool:
        """Whether SIPp has been started and has not exited yet."""
        return self._process is not None and self._process.poll() is None

    def wait(self, timeout: float | None = None) -> SippResult:
        """Wait for SIPp to exit (at most `timeout`, default its own timeout + 15 s)."""
        if self._process is None:
            raise RuntimeError("sipp was not started")
        try:
            code = self._process.wait(self.timeout + 15 if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            process.terminate(self._process)
            code = -1
        return self.result(code)

    def result(self, code: int) -> SippResult:
        """The logs as they are now, with exit `code`."""
        d = self.directory
        return SippResult(
            returncode=code,
            messages=_read_all(d.glob("*_messages.log")),
            errors=_read_all(d.glob("*_errors.log")),
            screen=self.log_path.read_text(errors="replace") if self.log_path.exists() else "",
        )

    def stop(self) -> None:
        """End SIPp if it still runs."""
        child, self._process = self._process, None
        if child is not None:
            process.terminate(child)

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        """A test that failed within the block says what SIPp saw and sent by then."""
        if isinstance(error, Exception) and self._dir is not None:
            running = self._process is not None and self._process.poll() is None
            code = -2 if running or self._process is None else self._process.returncode
            error.add_note(
                "SIPp when the test failed (exit -2: still running):\n"
                + self.result(code).report()
            )
        self.close()

    def close(self) -> None:
        """Stop and remove the work dir."""
        self.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _command(self) -> list[str]:
        d = self.directory
        command = [binaries.find("sipp")]
        if self.remote is not None:
            command.append(f"{self.remote[0]}:{self.remote[1]}")
        command += ["-sf", str(d / self.scenario.name), "-t", _FLAG[self.transport]]
        command += ["-i", HOST, "-p", str(self.port), "-mi", HOST, "-mp", str(self.media_port)]
        command += ["-m", "1", "-d", str(self.pause_ms), "-timeout", f"{self.timeout:g}s"]
        command += ["-nostdin", "-trace_msg", "-trace_err", "-max_recv_loops", "1000"]
        if self.service:
            command += ["-s", self.service]
        for name, value in self.keys.items():
            command += ["-key", name, value]
        # cwd: rtp_stream reads tone.ulaw relative to it, and the logs land there.
        return ["/usr/bin/env", "-C", str(d), *process.unprivileged(command)]


def run(scenario: str, remote: tuple[str, int] | None = None, **options: object) -> SippResult:
    """Run one call of `scenario` to its end; see `Sipp` for the options."""
    with Sipp(scenario, remote, **options) as sipp:  # type: ignore[arg-type]
        return sipp.wait()


def bind(ctl: Path, user: str, contact: str, expires: int = 3600) -> None:
    """Put `contact` into Kamailio's location table for `user` (kamcmd ul.add), as if it
    had registered: a SIPp callee cannot both register and take the INVITE of another
    Call-ID in one scenario.
    """
    # table, AoR, contact, expires, q, path, flags, cflags, methods (usrloc 5.6's ul.add)
    kamcmd.run(ctl, "ul.add", "location", f"s:{user}", f"s:{contact}", str(expires), "1.0",
               "s:0", "0", "0", "0")  # fmt: skip


def media_ports() -> int:
    """A UDP port P for SIPp's media, reserved with the three after it: SIPp binds P for
    audio and P + 2 for video (their RTCP neighbours too, in some versions)."""
    return ports.free_span(4)


def _read_all(paths: Iterable[Path]) -> str:
    return "".join(path.read_text(errors="replace") for path in sorted(paths))
