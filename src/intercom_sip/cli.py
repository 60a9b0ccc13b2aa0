"""The command line: serve, passwd, settings show/set, history."""

import argparse
import getpass
import ipaddress
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from intercom_sip import __version__, config, server
from intercom_sip.admin import credentials as auth
from intercom_sip.monitor import DeviceField
from intercom_sip.store import Store, StoreError

PASSWORD_LENGTHS = range(6, 129)
HTTP_TIMEOUT = 10.0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.command(args)
    except (StoreError, server.RefusedToStart, ValueError) as exc:
        print(f"intercom-sip: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="intercom-sip", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the service")
    config.add_serve_options(serve)
    serve.set_defaults(command=_serve)

    passwd = commands.add_parser("passwd", help="set the administrator's password")
    _data_dir_option(passwd)
    passwd.add_argument("--stdin", action="store_true", help="read it from standard input")
    passwd.set_defaults(command=_passwd)

    history = commands.add_parser("history", help="show who changed the settings, and when")
    _data_dir_option(history)
    history.add_argument("--limit", type=int, default=20)
    history.set_defaults(command=_history)

    settings = commands.add_parser("settings", help="read or set the SIP settings over HTTP")
    actions = settings.add_subparsers(required=True, metavar="ACTION")
    show = actions.add_parser("show", help="print the SIP settings")
    show.set_defaults(command=_settings_show)
    change = actions.add_parser("set", help="post a JSON body of SIP settings")
    change.add_argument("--file", type=Path, required=True, help="the body; - for stdin")
    change.set_defaults(command=_settings_set)
    for action in (show, change):
        _client_options(action)
    return parser


def _data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get(config.ENV_PREFIX + "DATA_DIR", "data")),
    )
    _device_option(parser, "its data in DATA_DIR/ADDRESS/")


def _device_option(parser: argparse.ArgumentParser, where: str) -> None:
    parser.add_argument(
        "--device",
        metavar="ADDRESS",
        help=f"one device of a building (serve --devices): {where}",
    )


def _device_address(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise ValueError(f"--device must be an IPv4 address, not {text!r}") from None


def _data_dir(args: argparse.Namespace) -> Path:
    """The data directory, or with --device that device's, which must be there (a typo
    must not make a store nobody serves)."""
    if args.device is None:
        return Path(args.data_dir)
    folder = Path(args.data_dir) / _device_address(args.device)
    if not folder.is_dir():
        raise ValueError(f"no device {args.device} in {args.data_dir}: {folder} is missing")
    return folder


def _url(args: argparse.Namespace) -> str:
    """The service's URL, or with --device that device's: the same URL at its address."""
    if args.device is None:
        return str(args.url)
    address = _device_address(args.device)
    parts = urllib.parse.urlsplit(args.url)
    netloc = address if parts.port is None else f"{address}:{parts.port}"
    return str(urllib.parse.urlunsplit(parts._replace(netloc=netloc)))


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get(config.ENV_PREFIX + "URL", "http://127.0.0.1:8080"),
        help="the service (env INTERCOM_SIP_URL)",
    )
    _device_option(parser, "the --url's scheme and port at ADDRESS")
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the administrator's password from standard input"
        " (else env INTERCOM_SIP_ADMIN_PASSWORD, else a prompt)",
    )


def _serve(args: argparse.Namespace) -> int:
    options = config.from_options(args)
    # A building's lines say which device's work wrote them.
    device = "%(device)s " if options.devices is not None else ""
    logging.basicConfig(
        level=options.log_level.upper(),
        format=f"%(asctime)s %(levelname)s {device}%(name)s: %(message)s",
        stream=sys.stderr,
    )
    if options.devices is not None:
        for handler in logging.getLogger().handlers:
            handler.addFilter(DeviceField())
    server.run(options)
    return 0


def _passwd(args: argparse.Namespace) -> int:
    folder = _data_dir(args)  # a wrong --device is told before the password is asked
    password = _new_password(args.stdin)
    if password is None:
        return 1
    store = Store.open(folder)
    credential = auth.make_credential(auth.md5_hex(password), os.urandom(auth.SALT_BYTES))
    store.save_credential(credential, time.time())
    store.close()
    print("password changed; a running service ends every token it issued")
    return 0


def _new_password(from_stdin: bool) -> str | None:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("New administrator password: ")
        if getpass.getpass("Again: ") != password:
            print("intercom-sip: the two passwords differ", file=sys.stderr)
            return None
    if len(password) not in PASSWORD_LENGTHS or not password.isprintable():
        print("intercom-sip: the password must be 6 to 128 printable characters", file=sys.stderr)
        return None
    return password


def _history(args: argparse.Namespace) -> int:
    store = Store.open(_data_dir(args))
    for entry in store.history(args.limit):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.at))
        changed = " (password changed)" if entry.password_changed else ""
        print(f"{stamp} {entry.actor}{changed} {json.dumps(entry.settings)}")
    store.close()
    return 0


def _settings_show(args: argparse.Namespace) -> int:
    return _with_session(args, lambda session: session.call("GET", "/device/sip/settings"))


def _settings_set(args: argparse.Namespace) -> int:
    body = sys.stdin.buffer.read() if str(args.file) == "-" else args.file.read_bytes()
    return _with_session(args, lambda s: s.call("POST", "/device/sip/settings", body))


class _Session:
    """A logged-in client of the API, as the vendor's clients do it."""

    def __init__(self, url: str) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError("the URL must start with http:// or https://")
        self.base = url.rstrip("/") + "/api/v1"
        self.token = ""

    def login(self, password: str) -> tuple[int, Any]:
        query = urllib.parse.urlencode({"username": "admin", "password": auth.md5_hex(password)})
        status, answer = self.call("GET", f"/login?{query}")
        if status == 200:
            self.token = answer["token"]
        return status, answer

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(self.base + path, data=body, method=method)  # noqa: S310 (scheme checked)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        if body is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as reply:  # noqa: S310
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as reply:
            return reply.code, json.loads(reply.read() or b"null")


def _with_session(args: argparse.Namespace, action: Any) -> int:
    url = _url(args)
    session = _Session(url)
    try:
        status, answer = session.login(_admin_password(args.password_stdin))
        if status == 200:
            status, answer = action(session)
            session.call("GET", "/logout")
    except (OSError, ValueError) as exc:
        print(f"intercom-sip: cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2))
    return 0 if status == 200 else 1


def _admin_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return os.environ.get(config.ENV_PREFIX + "ADMIN_PASSWORD") or getpass.getpass(
        "Administrator password: "
    )
