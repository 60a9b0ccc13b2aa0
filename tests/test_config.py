"""The HTTP options of `serve`: flags, environment, defaults, refusals."""

import argparse

import pytest

from intercom_sip import config


def options(*argv: str, environ: dict[str, str] | None = None) -> config.ServiceConfig:
    parser = argparse.ArgumentParser()
    config.add_serve_options(parser)
    return config.from_options(parser.parse_args(argv), environ or {})


def test_http_defaults() -> None:
    parsed = options()
    assert (parsed.http_timeout, parsed.http_max_connections) == (10.0, None)


def test_http_options_from_flags_and_environment() -> None:
    parsed = options("--http-timeout", "0.5", "--http-max-connections", "20")
    assert (parsed.http_timeout, parsed.http_max_connections) == (0.5, 20)
    env = {"INTERCOM_SIP_HTTP_TIMEOUT": "3", "INTERCOM_SIP_HTTP_MAX_CONNECTIONS": "7"}
    parsed = options(environ=env)
    assert (parsed.http_timeout, parsed.http_max_connections) == (3.0, 7)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"INTERCOM_SIP_HTTP_TIMEOUT": "0"}, "--http-timeout must be seconds from 0.01 to 86400"),
        (
            {"INTERCOM_SIP_HTTP_MAX_CONNECTIONS": "0"},
            "--http-max-connections must be a number from 1 to 1000000",
        ),
        (
            {"INTERCOM_SIP_HTTP_MAX_CONNECTIONS": "many"},
            "--http-max-connections must be a number from 1 to 1000000",
        ),
    ],
)
def test_http_options_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        options(environ=env)
    assert str(caught.value) == message


def test_the_loop_is_uvloop_unless_told() -> None:
    assert options().loop == "uvloop"
    assert options("--loop", "asyncio").loop == "asyncio"
    assert options(environ={"INTERCOM_SIP_LOOP": "asyncio"}).loop == "asyncio"
    with pytest.raises(ValueError) as caught:
        options(environ={"INTERCOM_SIP_LOOP": "trio"})
    assert str(caught.value) == "--loop must be one of uvloop, asyncio"
