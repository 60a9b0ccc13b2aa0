"""The service's options, from the command line and the environment, read once."""

import argparse
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ENV_PREFIX: Final = "INTERCOM_SIP_"


@dataclass(frozen=True)
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    allowed_hosts: tuple[str, ...] = ()
    allow_factory_password: bool = False
    log_level: str = "info"

    @property
    def loopback_only(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a name may resolve anywhere


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    """Flags win over INTERCOM_SIP_* variables, which win over the defaults."""
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default 8080; 0 picks a free one)")
    parser.add_argument("--data-dir", type=Path, help="where the store lives (default ./data)")
    parser.add_argument(
        "--allowed-host",
        action="append",
        dest="allowed_hosts",
        metavar="NAME",
        help="a further Host header name to answer (repeatable; env: comma-separated)",
    )
    parser.add_argument(
        "--allow-factory-password",
        action="store_true",
        default=None,
        help="listen beyond loopback even while the factory password is set",
    )
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])


def from_options(
    args: argparse.Namespace, environ: Mapping[str, str] = os.environ
) -> ServiceConfig:
    """Raises ValueError for a port that is no number."""

    defaults = ServiceConfig()

    def pick(name: str) -> object:
        value = getattr(args, name, None)
        if value is None:
            value = environ.get(ENV_PREFIX + name.upper())
        return getattr(defaults, name) if value is None else value

    hosts = args.allowed_hosts or _split(environ.get(ENV_PREFIX + "ALLOWED_HOSTS", ""))
    return ServiceConfig(
        host=str(pick("host")),
        port=_port(pick("port")),
        data_dir=Path(str(pick("data_dir"))),
        allowed_hosts=tuple(hosts),
        allow_factory_password=_flag(pick("allow_factory_password")),
        log_level=str(pick("log_level")).lower(),
    )


def _port(value: object) -> int:
    text = str(value)
    if not text.isdigit() or int(text) > 65535:
        raise ValueError(f"the port must be a number from 0 to 65535, not {text!r}")
    return int(text)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _flag(value: object) -> bool:
    return value is True or str(value).lower() in {"1", "true", "yes"}
