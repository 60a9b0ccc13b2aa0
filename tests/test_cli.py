"""The command line: serve's refusals and options, passwd, settings show/set, history."""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from intercom_sip.admin import credentials as auth
from tests.served import Served
from tests.test_validation import BASE

pytestmark = pytest.mark.served


def cli(
    *args: str, stdin: str = "", env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "intercom_sip", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_passwd_changes_the_login_and_ends_running_tokens(served: Served) -> None:
    token = served.login()
    done = cli("passwd", "--stdin", "--data-dir", str(served.data_dir), stdin="n3w-Secret\n")
    assert (done.returncode, done.stdout) == (
        0,
        "password changed; a running service ends every token it issued\n",
    )
    assert served.call("GET", "/api/v1/device/sip/settings", token) == (401, {"error": "Log In"})
    assert served.call(
        "GET", f"/api/v1/login?username=admin&password={auth.md5_hex('123456')}"
    ) == (400, {"error": "Wrong login or password"})
    served.login("n3w-Secret")
    assert "n3w-Secret" not in served.log
    assert auth.md5_hex("n3w-Secret") not in served.log


@pytest.mark.parametrize("password", ["", "12345", "tab\there", "x" * 129])
def test_passwd_refuses_weak_or_odd_passwords(tmp_path: Path, password: str) -> None:
    done = cli("passwd", "--stdin", "--data-dir", str(tmp_path), stdin=password + "\n")
    assert (done.returncode, done.stderr) == (
        1,
        "intercom-sip: the password must be 6 to 128 printable characters\n",
    )


def test_settings_show_and_set(served: Served, tmp_path: Path) -> None:
    env = {"INTERCOM_SIP_URL": served.url, "INTERCOM_SIP_ADMIN_PASSWORD": "123456"}
    body = tmp_path / "body.json"
    body.write_text(json.dumps(BASE))
    done = cli("settings", "set", "--file", str(body), env=env)
    expected = {**BASE, "password": "WebPass", "user_agent": "intercom-sip/0.1.0"}
    assert (done.returncode, json.loads(done.stdout)) == (0, expected)
    done = cli("settings", "show", env=env)
    assert (done.returncode, json.loads(done.stdout)) == (0, expected)
    done = cli("settings", "show", "--url", served.url, "--password-stdin", stdin="123456\n")
    assert (done.returncode, json.loads(done.stdout)) == (0, expected)


def test_settings_set_prints_the_error(served: Served, tmp_path: Path) -> None:
    env = {"INTERCOM_SIP_URL": served.url, "INTERCOM_SIP_ADMIN_PASSWORD": "123456"}
    body = tmp_path / "body.json"
    body.write_text(json.dumps({**BASE, "timeout": 5}))
    done = cli("settings", "set", "--file", str(body), env=env)
    assert (done.returncode, json.loads(done.stdout)) == (
        1,
        {
            "error": "Wrong JSON body: value `timeout` is invalid: must be one of 120, 300, 600,"
            " 1200, 1800"
        },
    )
    done = cli(
        "settings",
        "set",
        "--file",
        "-",
        stdin=json.dumps(BASE),
        env={**env, "INTERCOM_SIP_ADMIN_PASSWORD": "wrong-one"},
    )
    assert (done.returncode, json.loads(done.stdout)) == (1, {"error": "Wrong login or password"})


def test_settings_show_unreachable() -> None:
    done = cli(
        "settings",
        "show",
        "--url",
        "http://127.0.0.1:9",
        env={"INTERCOM_SIP_ADMIN_PASSWORD": "123456"},
    )
    assert done.returncode == 1
    assert done.stderr.startswith("intercom-sip: cannot reach http://127.0.0.1:9: ")
    done = cli(
        "settings",
        "show",
        "--url",
        "file:///etc/passwd",
        env={"INTERCOM_SIP_ADMIN_PASSWORD": "123456"},
    )
    assert (done.returncode, done.stderr) == (
        2,
        "intercom-sip: the URL must start with http:// or https://\n",
    )


def test_serve_refuses_to_listen_beyond_loopback_with_the_factory_password(
    tmp_path: Path,
) -> None:
    done = cli("serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path))
    assert (done.returncode, done.stderr) == (
        2,
        "intercom-sip: refusing to listen on 0.0.0.0 with the factory password: set one"
        " with `intercom-sip passwd`, or pass --allow-factory-password\n",
    )


def test_serve_beyond_loopback_when_told_or_after_passwd(tmp_path: Path) -> None:
    told = Served(tmp_path / "a", "--host", "0.0.0.0", "--allow-factory-password").start()
    try:
        assert told.url.startswith("http://0.0.0.0:")
        told.url = told.url.replace("0.0.0.0", "127.0.0.1")
        assert told.login()
    finally:
        told.stop()
    assert (
        cli(
            "passwd", "--stdin", "--data-dir", str(tmp_path / "b"), stdin="n3w-Secret\n"
        ).returncode
        == 0
    )
    changed = Served(tmp_path / "b", "--host", "0.0.0.0").start()
    assert changed.stop() == 0


def test_serve_reads_the_environment(tmp_path: Path) -> None:
    env_dir = tmp_path / "from-env"
    service = Served(
        env_dir,
        env={
            "INTERCOM_SIP_HOST": "127.0.0.1",
            "INTERCOM_SIP_PORT": "0",
            "INTERCOM_SIP_DATA_DIR": str(env_dir),
            "INTERCOM_SIP_ALLOWED_HOSTS": "a.example, b.example",
            # Not the default 5060: a registrar of another test may hold it.
            "INTERCOM_SIP_SIP_HOST": "127.0.0.1",
            "INTERCOM_SIP_SIP_PORT": "0",
        },
    ).start()
    try:
        assert (env_dir / "intercom-sip.sqlite3").exists()
        assert service.call("GET", "/api/info")[0] == 200
    finally:
        assert service.stop() == 0
    done = cli("serve", env={"INTERCOM_SIP_PORT": "x", "INTERCOM_SIP_DATA_DIR": str(env_dir)})
    assert (done.returncode, done.stderr) == (
        2,
        "intercom-sip: the port must be a number from 0 to 65535, not 'x'\n",
    )


def test_serve_reports_a_port_in_use(served: Served) -> None:
    port = served.url.rsplit(":", 1)[1]
    done = cli("serve", "--port", port, "--data-dir", str(served.data_dir), "--sip-port", "0")
    assert (done.returncode, done.stderr) == (
        2,
        f"intercom-sip: cannot listen on 127.0.0.1:{port}: Address already in use\n",
    )


def test_serve_refuses_a_store_that_is_no_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "intercom-sip.sqlite3").write_bytes(b"not a database, just junk" * 100)
    done = cli("serve", "--port", "0", "--data-dir", str(data))
    assert done.returncode == 2
    assert done.stderr.startswith("intercom-sip: cannot open ")
    assert done.stderr.endswith(": file is not a database\n")
    assert "Traceback" not in done.stderr


def test_history_shows_who_changed_what(served: Served) -> None:
    token = served.login()
    served.call("POST", "/api/v1/device/sip/settings", token, BASE)
    served.call(
        "POST",
        "/api/v1/device/sip/settings",
        token,
        {**BASE, "password": "WebPass", "timeout": 600},
    )
    done = cli("history", "--data-dir", str(served.data_dir))
    lines = done.stdout.splitlines()
    assert done.returncode == 0
    assert len(lines) == 2
    assert " admin@127.0.0.1 {" in lines[0]
    assert '"timeout": 600' in lines[0]
    assert " admin@127.0.0.1 (password changed) {" in lines[1]
    assert "secret1" not in done.stdout


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda path: path / "missing.pem", "No such file or directory"),
        (lambda path: path, "Is a directory"),
        (
            lambda path: _written(path / "junk.pem", "not a certificate\n"),
            "no CA certificate in it",
        ),
    ],
    ids=["missing", "a directory", "no PEM"],
)
def test_serve_refuses_a_tls_ca_file_it_cannot_use(
    tmp_path: Path, make: Callable[[Path], Path], reason: str
) -> None:
    ca_file = make(tmp_path)
    data = tmp_path / "data"
    done = cli(
        "serve",
        "--port",
        "0",
        "--sip-port",
        "0",
        "--data-dir",
        str(data),
        "--tls-ca-file",
        str(ca_file),
    )
    assert (done.returncode, done.stderr) == (
        2,
        f"intercom-sip: cannot use the TLS CA file {ca_file}: {reason}\n",
    )


def _written(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
