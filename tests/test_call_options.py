"""The call options of `serve` (issue 7): flags, environment, defaults, refusals at start."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from intercom_sip import config
from intercom_sip.media.ports import PortRange


def options(*argv: str, environ: dict[str, str] | None = None) -> config.ServiceConfig:
    parser = argparse.ArgumentParser()
    config.add_serve_options(parser)
    return config.from_options(parser.parse_args(argv), environ or {})


def test_call_defaults() -> None:
    parsed = options()
    assert (
        parsed.rtp_ports,
        parsed.audio,
        parsed.recordings,
        parsed.media_timeout,
        parsed.ring_time,
        parsed.auto_answer_delay,
        parsed.direct_calls,
    ) == (PortRange(10000, 20000), None, None, 30.0, 60.0, 1.0, False)


def test_call_options_from_flags_and_environment(tmp_path: Path) -> None:
    parsed = options(
        "--rtp-ports", "4000-4010", "--audio", "a.wav", "--recordings", str(tmp_path),
        "--media-timeout", "5", "--ring-time", "9", "--auto-answer-delay", "0",
        "--direct-calls",
    )  # fmt: skip
    assert (
        parsed.rtp_ports,
        parsed.audio,
        parsed.recordings,
        parsed.media_timeout,
        parsed.ring_time,
        parsed.auto_answer_delay,
        parsed.direct_calls,
    ) == (PortRange(4000, 4010), Path("a.wav"), tmp_path, 5.0, 9.0, 0.0, True)
    env = {
        "INTERCOM_SIP_RTP_PORTS": "30000-30100",
        "INTERCOM_SIP_MEDIA_TIMEOUT": "7",
        "INTERCOM_SIP_DIRECT_CALLS": "yes",
    }
    parsed = options(environ=env)
    assert (parsed.rtp_ports, parsed.media_timeout, parsed.direct_calls) == (
        PortRange(30000, 30100),
        7.0,
        True,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ("--rtp-ports", "10000"),
            "--rtp-ports: the RTP port range must be FIRST-LAST, 1024 <= FIRST <= LAST <= 65534",
        ),
        (
            ("--rtp-ports", "80-90"),
            "--rtp-ports: the RTP port range must be FIRST-LAST, 1024 <= FIRST <= LAST <= 65534",
        ),
        (("--rtp-ports", "4001-4001"), "--rtp-ports: the RTP port range holds no even port"),
        (("--media-timeout", "0"), "--media-timeout must be seconds from 0.01 to 86400"),
        (("--ring-time", "soon"), "--ring-time must be seconds from 0.01 to 86400"),
        (("--auto-answer-delay", "-1"), "--auto-answer-delay must be seconds from 0 to 86400"),
        (("--auto-answer-delay", "nan"), "--auto-answer-delay must be seconds from 0 to 86400"),
    ],
)
def test_call_options_refused(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        options(*argv)
    assert str(caught.value) == message


def serve(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "intercom_sip", "serve", "--port", "0", "--sip-port", "0"]
    command += ["--data-dir", str(tmp_path / "data"), *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def test_serve_refuses_a_bad_port_range(tmp_path: Path) -> None:
    done = serve(tmp_path, "--rtp-ports", "20000-10000")
    assert (done.returncode, done.stderr) == (
        2,
        "intercom-sip: --rtp-ports: the RTP port range must be FIRST-LAST,"
        " 1024 <= FIRST <= LAST <= 65534\n",
    )


def test_serve_refuses_audio_it_cannot_use(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF junk")
    done = serve(tmp_path, "--audio", str(junk))
    assert (done.returncode, done.stderr) == (
        2,
        f"intercom-sip: --audio {junk}: the audio file is not a readable WAV file\n",
    )


def test_serve_refuses_recordings_it_cannot_write(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = serve(tmp_path, "--recordings", str(blocker / "calls"))
    assert (done.returncode, done.stderr) == (
        2,
        f"intercom-sip: --recordings {blocker / 'calls'}: Not a directory\n",
    )
