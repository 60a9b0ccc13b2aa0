"""The SIP network options: --dns-server, --sip-tcp-idle, --sip-tcp-max."""

import argparse
from pathlib import Path

import pytest

from intercom_sip import config
from tests.test_cli import cli


def options(*argv: str, environ: dict[str, str] | None = None) -> config.ServiceConfig:
    parser = argparse.ArgumentParser()
    config.add_serve_options(parser)
    return config.from_options(parser.parse_args(argv), environ or {})


def test_the_defaults() -> None:
    found = options()
    assert (found.dns_servers, found.sip_tcp_idle, found.sip_tcp_max) == ((), 120.0, 64)


def test_dns_servers_repeat_and_take_ports() -> None:
    found = options("--dns-server", "192.0.2.53", "--dns-server", "[2001:db8::53]:5353")
    assert found.dns_servers == (("192.0.2.53", 53), ("2001:db8::53", 5353))


def test_dns_servers_from_the_environment() -> None:
    found = options(environ={"INTERCOM_SIP_DNS_SERVER": "127.0.0.1:5300, 192.0.2.1"})
    assert found.dns_servers == (("127.0.0.1", 5300), ("192.0.2.1", 53))


@pytest.mark.parametrize(
    "value", ["dns.example", "192.0.2.1:0", "192.0.2.1:65536", "192.0.2.1:", "[::1", "1.2.3"]
)
def test_a_bad_dns_server_is_refused(value: str) -> None:
    with pytest.raises(ValueError) as raised:
        options("--dns-server", value)
    assert str(raised.value) == (
        f"--dns-server must be an IP address with an optional :port, not {value!r}"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sip-tcp-idle", "0"], "--sip-tcp-idle must be seconds from 0.01 to 86400"),
        (["--sip-tcp-max", "0"], "--sip-tcp-max must be a number from 1 to 65535"),
        (["--sip-tcp-max", "x"], "--sip-tcp-max must be a number from 1 to 65535"),
    ],
)
def test_bad_tcp_limits_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        options(*argv)
    assert str(raised.value) == message


def test_serve_exits_2_with_one_line_for_a_bad_dns_server(tmp_path: Path) -> None:
    done = cli("serve", "--data-dir", str(tmp_path / "data"), "--dns-server", "nowhere")
    assert (done.returncode, done.stderr) == (
        2,
        "intercom-sip: --dns-server must be an IP address with an optional :port, not 'nowhere'\n",
    )
