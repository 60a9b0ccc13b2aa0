"""Contract §2 under load, through the ASGI app: concurrent logins, hashes counted."""

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from intercom_sip.admin import credentials as auth
from intercom_sip.api.endpoints import ENDPOINTS
from intercom_sip.worker import Worker
from tests.conftest import FACTORY_MD5, Rig, make_rig

T = TypeVar("T")
FLOOD, OTHER = "192.0.2.66", "192.0.2.7"
WRONG = (400, {"error": "Wrong login or password"})
THROTTLED = (429, {"error": "Too many login attempts"})


class CountingWorker(Worker):
    """The real pool of the service's two threads, keeping each hash's verdict in the
    order they ended."""

    def __init__(self) -> None:
        super().__init__("hash", threads=2)
        self.verdicts: list[object] = []

    async def run(self, call: Callable[[], T]) -> T:
        verdict = await super().run(call)
        self.verdicts.append(verdict)
        return verdict


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[tuple[Rig, CountingWorker]]:
    worker = CountingWorker()
    made = make_rig(tmp_path / "data", hasher=worker)
    yield made, worker
    made.client.close()


async def call(
    rig: Rig,
    path: str,
    query: str = "",
    client: str = FLOOD,
    token: str | None = None,
    method: str = "GET",
) -> tuple[int, dict[bytes, bytes], Any]:
    headers = [(b"host", b"127.0.0.1:8080")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query.encode(),
        "headers": headers,
        "client": (client, 50000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await rig.client.app(scope, receive, send)
    start, body = sent
    return start["status"], dict(start["headers"]), json.loads(body["body"])


async def login(rig: Rig, md5: str, client: str = FLOOD) -> tuple[int, Any]:
    status, _, answer = await call(rig, "/api/v1/login", f"username=admin&password={md5}", client)
    return status, answer


def run(rig: Rig, *logins: Any) -> list[tuple[int, Any]]:
    async def together() -> list[tuple[int, Any]]:
        return list(await asyncio.gather(*logins))

    return rig.client.runner.run(together())


def test_a_flood_of_wrong_logins_gets_at_most_five_hashes(
    counted: tuple[Rig, CountingWorker],
) -> None:
    rig, worker = counted
    answers = []
    for wave in range(6):  # one hash at a time per address: five waves use the five
        guesses = [auth.md5_hex(f"guess{wave}.{n}") for n in range(300)]
        guesses[150] = FACTORY_MD5  # a right pair among them
        answers += run(rig, *(login(rig, md5) for md5 in guesses))
        assert answers[-150] == THROTTLED  # the right pair never got a token
    assert answers.count(WRONG) == 5
    assert answers.count(THROTTLED) == 6 * 300 - 5
    assert worker.verdicts == [False] * 5
    assert run(rig, login(rig, FACTORY_MD5)) == [THROTTLED]


def test_a_right_login_elsewhere_is_not_held_up_by_a_flood(
    counted: tuple[Rig, CountingWorker],
) -> None:
    rig, worker = counted
    flood = [login(rig, auth.md5_hex(f"guess{n}")) for n in range(300)]
    answers = run(rig, *flood, login(rig, FACTORY_MD5, OTHER))
    assert answers[-1][0] == 200
    # One flood hash at a time, mine beside it on the other thread: behind none.
    assert sorted(worker.verdicts, key=bool) == [False, True]


def test_a_client_retrying_an_old_password_does_not_block_its_address(
    counted: tuple[Rig, CountingWorker],
) -> None:
    rig, worker = counted
    old = auth.md5_hex("old password")
    for _ in range(20):
        assert run(rig, login(rig, old)) == [WRONG]
        rig.clock.now += 5
    assert run(rig, login(rig, FACTORY_MD5))[0][0] == 200
    assert worker.verdicts == [False, True]  # the old password was judged once


PROTECTED = sorted(
    (endpoint.method, path)
    for endpoint in ENDPOINTS
    if endpoint.protected
    for path in endpoint.full_paths()
)


def test_every_401_carries_the_bearer_challenge(rig: Rig) -> None:
    async def unauthorized() -> list[tuple[int, bytes | None, Any]]:
        answers = []
        for method, path in PROTECTED:
            for token in (None, "0" * 40):
                status, headers, answer = await call(rig, path, token=token, method=method)
                answers.append((status, headers.get(b"www-authenticate"), answer))
        return answers

    assert PROTECTED
    answers = rig.client.runner.run(unauthorized())
    assert answers == [(401, b"Bearer", {"error": "Log In"})] * 2 * len(PROTECTED)


def test_other_answers_carry_no_challenge(rig: Rig) -> None:
    token = rig.login()

    async def answers() -> list[tuple[int, bytes | None]]:
        found = []
        for path, query in [
            ("/api/v1/login", f"username=admin&password={FACTORY_MD5}"),
            ("/api/v1/login", "username=admin&password=x"),
            ("/api/v1/device/sip/settings", ""),
        ]:
            status, headers, _ = await call(rig, path, query, token=token)
            found.append((status, headers.get(b"www-authenticate")))
        return found

    assert rig.client.runner.run(answers()) == [(200, None), (400, None), (200, None)]
