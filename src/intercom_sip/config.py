"""The service's options, from the command line and the environment, read once."""

import argparse
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from intercom_sip.media.ports import PortError, PortRange, parse_range
from intercom_sip.sip.transactions import T1

ENV_PREFIX: Final = "INTERCOM_SIP_"
RTP_PORTS: Final = PortRange(10000, 20000)
LOOPS: Final = ("uvloop", "asyncio")  # the names server.LOOPS makes loops of
MAX_DEVICES: Final = 1000


@dataclass(frozen=True)
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    allowed_hosts: tuple[str, ...] = ()
    allow_factory_password: bool = False
    log_level: str = "info"
    sip_host: str = "0.0.0.0"  # noqa: S104 (SIP answers the device's network)
    sip_port: int = 5060
    tls_ca_file: str | None = None
    tls_no_verify: bool = False
    sip_t1: float = T1
    sip_auth_retry: float = 60.0
    sip_backoff_max: float = 300.0
    sip_keepalive: float | None = None
    http_timeout: float = 10.0
    http_max_connections: int | None = None
    dns_servers: tuple[tuple[str, int], ...] = ()  # none: the system's
    sip_tcp_idle: float = 120.0
    sip_tcp_max: int = 64
    rtp_ports: PortRange = RTP_PORTS
    audio: Path | None = None  # None: a tone
    recordings: Path | None = None  # None: calls are not recorded
    media_timeout: float = 30.0
    ring_time: float = 60.0
    auto_answer_delay: float = 1.0
    direct_calls: bool = False
    loop: str = "uvloop"
    devices: int | None = None  # None: one device, at --host and --sip-host
    first_address: str | None = None  # with devices: device i at this address + i

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
    parser.add_argument(
        "--http-timeout",
        type=float,
        metavar="SECONDS",
        help="close an HTTP connection whose request head is not whole this long after it"
        " opened or after its last answer, whose body stalls or whose answers go unread"
        " this long (default 10)",
    )
    parser.add_argument(
        "--http-max-connections",
        type=int,
        metavar="N",
        help="the most HTTP connections held at once; at the cap the longest idle is closed"
        " (default 1024, and always below the open-file limit less 64)",
    )
    parser.add_argument(
        "--loop",
        choices=LOOPS,
        help="the event loop: uvloop (default, the faster) or asyncio (the standard one)",
    )
    sip = parser.add_argument_group("SIP")
    sip.add_argument("--sip-host", help="address of the SIP port (default 0.0.0.0)")
    sip.add_argument("--sip-port", type=int, help="the fixed local SIP port (default 5060)")
    sip.add_argument(
        "--tls-ca-file",
        help="CA certificates to verify the proxy with (default: the system's store)",
    )
    sip.add_argument(
        "--tls-no-verify",
        action="store_true",
        default=None,
        help="do not verify the proxy's TLS certificate (testing only)",
    )
    sip.add_argument("--sip-t1", type=float, help=f"SIP timer T1 in seconds (default {T1})")
    sip.add_argument(
        "--sip-auth-retry",
        type=float,
        help="seconds before retrying a refused password (default 60)",
    )
    sip.add_argument(
        "--sip-keepalive",
        type=float,
        help="seconds between keep-alives to the proxy (default 25 on UDP, 90 on TCP/TLS)",
    )
    sip.add_argument(
        "--dns-server",
        action="append",
        dest="dns_servers",
        metavar="ADDR[:PORT]",
        help="a DNS server to find the proxy with (repeatable; env: comma-separated;"
        " default: the system's)",
    )
    sip.add_argument(
        "--sip-tcp-idle",
        type=float,
        help="seconds a TCP connection made to the SIP port may carry nothing (default 120)",
    )
    sip.add_argument(
        "--sip-tcp-max",
        help="most TCP connections made to the SIP port at once (default 64)",
    )
    sip.add_argument(
        "--sip-backoff-max",
        type=float,
        help="longest wait between retries after errors (default 300)",
    )
    building = parser.add_argument_group("a building: many monitors in one process")
    building.add_argument(
        "--devices",
        metavar="N",
        help=f"serve N monitors (1 to {MAX_DEVICES}): device i on address FIRST + i, HTTP at"
        " --port and SIP at --sip-port, its data in DATA_DIR/<address>/",
    )
    building.add_argument(
        "--first-address",
        metavar="FIRST",
        help="the IPv4 address of the first device (with --devices; any 127.x.y.z on Linux)",
    )
    calls = parser.add_argument_group("calls")
    calls.add_argument(
        "--rtp-ports", metavar="FIRST-LAST", help="UDP ports for RTP (default 10000-20000)"
    )
    calls.add_argument(
        "--audio",
        metavar="FILE.wav",
        help="what the monitor sends in a call: a WAV file, 8 kHz mono 16-bit, looped"
        " (default a 425 Hz tone)",
    )
    calls.add_argument(
        "--recordings",
        metavar="DIR",
        help="write the audio each call receives to DIR/<call id>.wav (default: none)",
    )
    calls.add_argument(
        "--media-timeout",
        metavar="SECONDS",
        help="end an answered call with BYE when no RTP arrived this long (default 30)",
    )
    calls.add_argument(
        "--ring-time",
        metavar="SECONDS",
        help="an incoming call unanswered this long is refused 480 (default 60)",
    )
    calls.add_argument(
        "--auto-answer-delay",
        metavar="SECONDS",
        help="how long an incoming call rings before auto-answer takes it (default 1)",
    )
    calls.add_argument(
        "--direct-calls",
        action="store_true",
        default=None,
        help="take INVITEs from any address, not only from the proxy's (door panels that"
        " call the monitor directly on one network)",
    )


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

    building = _building(args, pick("devices"), pick("first_address"))
    hosts = args.allowed_hosts or _split(environ.get(ENV_PREFIX + "ALLOWED_HOSTS", ""))
    dns = getattr(args, "dns_servers", None) or _split(environ.get(ENV_PREFIX + "DNS_SERVER", ""))
    return ServiceConfig(
        host=str(pick("host")),
        port=_port(pick("port")),
        data_dir=Path(str(pick("data_dir"))),
        allowed_hosts=tuple(hosts),
        allow_factory_password=_flag(pick("allow_factory_password")),
        log_level=str(pick("log_level")).lower(),
        sip_host=str(pick("sip_host")),
        sip_port=_port(pick("sip_port")),
        tls_ca_file=_optional(pick("tls_ca_file")),
        tls_no_verify=_flag(pick("tls_no_verify")),
        sip_t1=_seconds("sip_t1", pick("sip_t1")),
        sip_auth_retry=_seconds("sip_auth_retry", pick("sip_auth_retry")),
        sip_backoff_max=_seconds("sip_backoff_max", pick("sip_backoff_max")),
        sip_keepalive=None
        if pick("sip_keepalive") is None
        else _seconds("sip_keepalive", pick("sip_keepalive")),
        http_timeout=_seconds("http_timeout", pick("http_timeout")),
        http_max_connections=None
        if pick("http_max_connections") is None
        else _count("http_max_connections", pick("http_max_connections"), 1_000_000),
        dns_servers=tuple(dns_server(text) for text in dns),
        sip_tcp_idle=_seconds("sip_tcp_idle", pick("sip_tcp_idle")),
        sip_tcp_max=_count("sip_tcp_max", pick("sip_tcp_max")),
        rtp_ports=_rtp_ports(pick("rtp_ports")),
        audio=_path(pick("audio")),
        recordings=_path(pick("recordings")),
        media_timeout=_seconds("media_timeout", pick("media_timeout")),
        ring_time=_seconds("ring_time", pick("ring_time")),
        auto_answer_delay=_delay("auto_answer_delay", pick("auto_answer_delay")),
        direct_calls=_flag(pick("direct_calls")),
        loop=_loop(pick("loop")),
        devices=building[0],
        first_address=building[1],
    )


# The flags a building decides for each device itself.
_PER_DEVICE: Final = (("host", "--host"), ("sip_host", "--sip-host"))


def _building(
    args: argparse.Namespace, devices: object, first: object
) -> tuple[int | None, str | None]:
    """`devices` and `first_address`, checked together."""
    if devices is None:
        if first is not None:
            raise ValueError("--first-address needs --devices")
        return None, None
    count = _count("devices", devices, MAX_DEVICES)
    if first is None:
        raise ValueError("--devices needs --first-address")
    for name, flag in _PER_DEVICE:
        if getattr(args, name, None) is not None:
            raise ValueError(f"{flag} cannot go with --devices: device i uses --first-address + i")
    try:
        address = ipaddress.IPv4Address(str(first))
    except ValueError:
        raise ValueError(f"--first-address must be an IPv4 address, not {str(first)!r}") from None
    if int(address) + count - 1 > int(ipaddress.IPv4Address("255.255.255.255")):
        raise ValueError(f"--first-address {address} leaves no room for {count} devices")
    return count, str(address)


def _loop(value: object) -> str:
    if str(value) not in LOOPS:
        raise ValueError(f"--loop must be one of {', '.join(LOOPS)}")
    return str(value)


def _rtp_ports(value: object) -> PortRange:
    if isinstance(value, PortRange):
        return value
    ports = parse_range(str(value))
    if isinstance(ports, PortError):
        raise ValueError(f"--rtp-ports: {ports.message}")
    return ports


def _path(value: object) -> Path | None:
    return None if value is None or str(value) == "" else Path(str(value))


def _delay(name: str, value: object) -> float:
    """Seconds, 0 allowed (answer at once)."""
    try:
        seconds = float(str(value))
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 86400:
        raise ValueError(f"--{name.replace('_', '-')} must be seconds from 0 to 86400")
    return seconds


def _optional(value: object) -> str | None:
    return None if value is None else str(value)


def _seconds(name: str, value: object) -> float:
    try:
        seconds = float(str(value))
    except ValueError:
        seconds = -1.0
    if not 0.01 <= seconds <= 86400:
        raise ValueError(f"--{name.replace('_', '-')} must be seconds from 0.01 to 86400")
    return seconds


def dns_server(text: str) -> tuple[str, int]:
    """`192.0.2.53`, `192.0.2.53:5353`, `2001:db8::53` or `[2001:db8::53]:5353`."""
    host, port = text, "53"
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ("53" if bracket and not rest else "")
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(
            f"--dns-server must be an IP address with an optional :port, not {text!r}"
        )
    return (str(address), int(port))


def _count(name: str, value: object, most: int = 65535) -> int:
    text = str(value)
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise ValueError(f"--{name.replace('_', '-')} must be a number from 1 to {most}")
    return int(text)


def _port(value: object) -> int:
    text = str(value)
    if not text.isdigit() or int(text) > 65535:
        raise ValueError(f"the port must be a number from 0 to 65535, not {text!r}")
    return int(text)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _flag(value: object) -> bool:
    return value is True or str(value).lower() in {"1", "true", "yes"}
