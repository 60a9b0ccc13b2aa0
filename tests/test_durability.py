"""A 200 means the settings survive SIGKILL; concurrent POSTs never mix."""

import concurrent.futures
import copy
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.served import Served
from tests.test_validation import BASE

pytestmark = pytest.mark.served
SETTINGS = "/api/v1/device/sip/settings"


def test_settings_survive_sigkill_right_after_200(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for round_ in range(5):
        service = Served(data).start()
        token = service.login()
        body = {
            **BASE,
            "user": f"user{round_}",
            "password": f"secret{round_}x",
            "timeout": [120, 300, 600, 1200, 1800][round_],
        }
        status, view = service.call("POST", SETTINGS, token, body)
        assert status == 200
        service.kill()
        again = Served(data).start()
        try:
            token = again.login()
            assert again.call("GET", SETTINGS, token) == (200, view)
        finally:
            again.kill()


def test_the_api_answers_while_a_commit_waits_for_the_lock(tmp_path: Path) -> None:
    """Another process holds the write lock: GETs are answered meanwhile (the commit
    waits on the writer's thread, not on the loop); the POST's 200 comes once the lock
    is released, and holds through SIGKILL."""
    from intercom_sip.store import DB_NAME

    data = tmp_path / "data"
    service = Served(data).start()
    token = service.login()
    body = {**BASE, "user": "locked", "timeout": 600}
    holder = sqlite3.connect(data / DB_NAME, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        post = pool.submit(service.call, "POST", SETTINGS, token, body)
        answered = [service.call("GET", SETTINGS, token)[0] for _ in range(5)]
        pending = not post.done()
        holder.close()  # the other process is done
        status, view = post.result(30)
    try:
        assert (answered, pending, status) == ([200] * 5, True, 200)
        service.kill()
        again = Served(data).start()
        assert again.call("GET", SETTINGS, again.login()) == (200, view)
        again.kill()
    finally:
        service.stop()


def test_concurrent_posts_store_exactly_one_body(tmp_path: Path) -> None:
    service = Served(tmp_path / "data").start()
    try:
        token = service.login()
        bodies: list[dict[str, Any]] = []
        for i in range(16):
            body = copy.deepcopy(BASE)
            body.update(
                user=f"u{i}",
                user_id=f"auth{i}",
                password=f"pass{i:04}",
                registration_interval=30 + i,
                transport=["udp", "tcp", "tls"][i % 3],
            )
            body["stun"] = {"ip": f"stun{i}.example.com", "port": 1000 + i}
            bodies.append(body)
        with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(pool.map(lambda b: service.call("POST", SETTINGS, token, b), bodies))
        assert [status for status, _ in answers] == [200] * len(bodies)
        status, stored = service.call("GET", SETTINGS, token)
        assert status == 200
        views = [{**b, "password": "WebPass", "user_agent": "intercom-sip/0.1.0"} for b in bodies]
        assert stored in views
        winner = views.index(stored)
        service.kill()
        again = Served(tmp_path / "data").start()
        try:
            assert again.call("GET", SETTINGS, again.login()) == (200, stored)
        finally:
            again.stop()
        from intercom_sip.store import Store

        store = Store.open(tmp_path / "data")
        settings = store.load_settings()
        assert settings is not None
        assert settings.password == bodies[winner]["password"]
        assert len(store.history(100)) == len(bodies)
        assert store.history(1)[0].settings == stored
    finally:
        service.stop()


def test_restart_ends_tokens(served: Served) -> None:
    token = served.login()
    assert served.stop() == 0
    again = Served(served.data_dir).start()
    try:
        assert again.call("GET", SETTINGS, token) == (401, {"error": "Log In"})
    finally:
        again.stop()


def test_data_directory_is_private(served: Served) -> None:
    token = served.login()
    assert served.call("POST", SETTINGS, token, BASE)[0] == 200
    assert stat.S_IMODE(served.data_dir.stat().st_mode) == 0o700
    files = list(served.data_dir.iterdir())
    assert {f.name for f in files} >= {"intercom-sip.sqlite3", "intercom-sip.sqlite3-wal"}
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


def test_an_open_data_directory_is_narrowed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    service = Served(data).start()
    try:
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert "data directory" in service.log
    finally:
        service.stop()
