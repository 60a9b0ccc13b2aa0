"""A building: `serve --devices N --first-address A` (issue 14). The options' refusals,
devices that share nothing a client sees, the command line's `--device`, and one store's
failure that stops its device alone."""

import argparse
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from intercom_sip import config, errors, server
from intercom_sip.store import DB_NAME
from tests.building import Building
from tests.served import wait_for
from tests.test_cli import cli
from tests.test_validation import BASE

SETTINGS = "/api/v1/device/sip/settings"
INFO = "/api/info"
LOG_IN = (401, {"error": errors.LOG_IN})
OFF = {**BASE, "enable": False}  # nothing goes on the wire (no DNS for pbx.example.com)


def parsed(*flags: str) -> config.ServiceConfig:
    parser = argparse.ArgumentParser()
    config.add_serve_options(parser)
    return config.from_options(parser.parse_args(list(flags)), environ={})


COUNT = "--devices must be a number from 1 to 1000"
FIRST = "--first-address"
NOT_IPV4 = "--first-address must be an IPv4 address, not "
NO_ADDRESS = "--device must be an IPv4 address, not "


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--devices", "0", FIRST, "127.0.20.0"), COUNT),
        (("--devices", "1001", FIRST, "127.0.20.0"), COUNT),
        (("--devices", "ten", FIRST, "127.0.20.0"), COUNT),
        (("--devices", "-3", FIRST, "127.0.20.0"), COUNT),
        (("--devices", "10"), "--devices needs --first-address"),
        ((FIRST, "127.0.20.0"), "--first-address needs --devices"),
        (("--devices", "10", FIRST, "127.0.20"), NOT_IPV4 + "'127.0.20'"),
        (("--devices", "10", FIRST, "::1"), NOT_IPV4 + "'::1'"),
        (
            ("--devices", "10", "--first-address", "255.255.255.250"),
            "--first-address 255.255.255.250 leaves no room for 10 devices",
        ),
        (
            ("--devices", "2", "--first-address", "127.0.20.0", "--host", "127.0.0.1"),
            "--host cannot go with --devices: device i uses --first-address + i",
        ),
        (
            ("--devices", "2", "--first-address", "127.0.20.0", "--sip-host", "0.0.0.0"),
            "--sip-host cannot go with --devices: device i uses --first-address + i",
        ),
    ],
)
def test_the_building_options_refused(flags: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError) as refused:
        parsed(*flags)
    assert str(refused.value) == message


def test_the_building_options_taken() -> None:
    taken = parsed("--devices", "1000", "--first-address", "127.0.20.0")
    assert (taken.devices, taken.first_address) == (1000, "127.0.20.0")
    assert (parsed().devices, parsed().first_address) == (None, None)
    last = parsed("--devices", "6", "--first-address", "255.255.255.250")
    assert (last.devices, last.first_address) == (6, "255.255.255.250")


@pytest.mark.served
def test_serve_says_why_it_refuses_a_building(tmp_path: Path) -> None:
    done = cli("serve", "--devices", "1001", "--first-address", "127.0.20.0")
    assert (done.returncode, done.stderr) == (
        2,
        "intercom-sip: --devices must be a number from 1 to 1000\n",
    )


@pytest.fixture
def building(tmp_path: Path) -> Iterator[Building]:
    served = Building(tmp_path / "data", 3).start()
    yield served
    served.stop()


@pytest.mark.served
def test_devices_share_nothing_a_client_sees(building: Building) -> None:
    serials = {building.call(i, "GET", INFO)[1]["device_serial_number"] for i in range(3)}
    assert len(serials) == 3
    assert sorted(p.name for p in building.data_dir.iterdir()) == sorted(
        building.address(i) for i in range(3)
    )
    token = building.login(1)
    assert building.call(1, "GET", SETTINGS, token)[0] == 200
    assert building.call(0, "GET", SETTINGS, token) == LOG_IN
    assert building.call(2, "GET", SETTINGS, token) == LOG_IN
    assert building.call(1, "POST", SETTINGS, token, OFF)[0] == 200
    assert building.call(0, "GET", SETTINGS, building.login(0))[1]["user"] == ""


@pytest.mark.served
def test_the_command_line_reaches_one_device(building: Building, tmp_path: Path) -> None:
    data, second = str(building.data_dir), building.address(1)
    before = [building.login(i) for i in range(3)]
    done = cli("passwd", "--stdin", "--data-dir", data, "--device", second, stdin="n3w-Secret\n")
    assert (done.returncode, done.stdout) == (
        0,
        "password changed; a running service ends every token it issued\n",
    )
    building.login(1, "n3w-Secret")
    assert building.call(1, "GET", SETTINGS, before[1]) == LOG_IN  # its tokens end
    assert building.call(0, "GET", SETTINGS, before[0])[0] == 200  # the others' stay
    assert building.call(2, "GET", SETTINGS, before[2])[0] == 200
    building.login(0)  # and so do their passwords
    building.login(2)
    body = tmp_path / "body.json"
    body.write_text(json.dumps(OFF | {"user": "2001"}))
    url = f"http://127.0.0.1:{building.port}"
    env = {"INTERCOM_SIP_URL": url, "INTERCOM_SIP_ADMIN_PASSWORD": "n3w-Secret"}
    done = cli("settings", "set", "--file", str(body), "--device", second, env=env)
    assert (done.returncode, json.loads(done.stdout)["user"]) == (0, "2001")
    done = cli("history", "--data-dir", data, "--device", second)
    assert (done.returncode, done.stdout.count("\n")) == (0, 1)
    assert '"user": "2001"' in done.stdout
    done = cli("history", "--data-dir", data, "--device", building.address(2))
    assert (done.returncode, done.stdout) == (0, "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("history", "--device", "door-1"), NO_ADDRESS + "'door-1'"),
        (("passwd", "--stdin", "--device", "127.0.0.300"), NO_ADDRESS + "'127.0.0.300'"),
        (("settings", "show", "--device", "x"), NO_ADDRESS + "'x'"),
    ],
)
def test_the_command_line_refuses_a_device_that_is_no_address(
    args: tuple[str, ...], message: str
) -> None:
    done = cli(*args, env={"INTERCOM_SIP_ADMIN_PASSWORD": "123456"})
    assert (done.returncode, done.stderr) == (2, f"intercom-sip: {message}\n")


def test_the_command_line_refuses_a_device_not_there(tmp_path: Path) -> None:
    done = cli("history", "--data-dir", str(tmp_path), "--device", "127.0.20.7")
    assert (done.returncode, done.stderr) == (
        2,
        f"intercom-sip: no device 127.0.20.7 in {tmp_path}: {tmp_path}/127.0.20.7 is missing\n",
    )
    assert list(tmp_path.iterdir()) == []


def _post(building: Building, index: int, token: str, body: Any, into: list[Any]) -> None:
    into.append(building.call(index, "POST", SETTINGS, token, body))


@pytest.mark.served
def test_one_store_failing_stops_that_device_alone(building: Building) -> None:
    tokens = [building.login(i) for i in range(3)]
    # Another process holds the first device's store's write lock: its commit waits the
    # busy timeout (5 s) and fails. The second's goes on meanwhile.
    locker = sqlite3.connect(building.data_dir / building.address(0) / DB_NAME)
    locker.execute("BEGIN IMMEDIATE")
    try:
        failed: list[Any] = []
        waiting = threading.Thread(
            target=_post, args=(building, 0, tokens[0], OFF | {"user": "2000"}, failed)
        )
        waiting.start()
        assert building.call(1, "POST", SETTINGS, tokens[1], OFF | {"user": "2001"})[0] == 200
        assert waiting.is_alive()  # answered before the failing device's store gave up
        assert building.call(2, "GET", SETTINGS, tokens[2])[1]["user"] == ""
        waiting.join(30)
        assert failed == [(503, {"error": errors.STORAGE_FAILED})]
        assert building.call(0, "GET", SETTINGS, tokens[0])[1]["user"] == ""
    finally:
        locker.rollback()
        locker.close()
    assert building.call(0, "POST", SETTINGS, tokens[0], OFF | {"user": "2000"})[0] == 200
    assert [building.call(i, "GET", SETTINGS, tokens[i])[1]["user"] for i in range(3)] == [
        "2000",
        "2001",
        "",
    ]


@pytest.mark.served
def test_each_line_of_the_log_names_its_device(building: Building) -> None:
    wrong = "/api/v1/login?username=admin&password=" + "0" * 32
    assert building.call(2, "GET", wrong)[0] == 400
    wait_for(lambda: "failed login" in building.log, 10)  # read from its stderr by a thread
    failed = [line for line in building.lines if "failed login" in line]
    assert [line.split(" ", 3)[3] for line in failed] == [
        f"{building.address(2)} intercom_sip.admin.logins: failed login from 127.0.0.1\n"
    ]


def test_each_device_of_a_building_has_its_own_address_and_data(tmp_path: Path) -> None:
    building = parsed("--devices", "3", "--first-address", "127.0.20.254", "--data-dir", "d")
    assert [
        (c.host, c.sip_host, c.data_dir, c.http_max_connections, c.devices)
        for c in server.device_configs(building)
    ] == [
        ("127.0.20.254", "127.0.20.254", Path("d/127.0.20.254"), 64, None),
        ("127.0.20.255", "127.0.20.255", Path("d/127.0.20.255"), 64, None),
        ("127.0.21.0", "127.0.21.0", Path("d/127.0.21.0"), 64, None),
    ]
    capped = parsed(
        "--devices", "1", "--first-address", "127.0.20.1", "--http-max-connections", "9"
    )
    assert [c.http_max_connections for c in server.device_configs(capped)] == [9]
    one = parsed("--data-dir", "d")
    assert server.device_configs(one) == [one]
