"""The connection cap, the longest-idle-first eviction, and accept errors."""

import errno
import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from intercom_sip.api.connection import Limits
from intercom_sip.api.listener import FD_RESERVE, connection_cap
from intercom_sip.server import bind
from tests.api.serving import InProcess
from tests.http_client import Client, closed_by_server, read_answer, request, wait_for

LONG = Limits(timeout=60.0)


@pytest.fixture(params=["uvloop", "asyncio"])
def loop(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def capped(loop: str) -> Iterator[InProcess]:
    instance = InProcess(LONG, max_connections=3, loop=loop).start()
    yield instance
    instance.stop()


def served(client: Client, path: str = "/") -> bool:
    client.sendall(request(path))
    status, _, body = read_answer(client)
    return status == 200 and json.loads(body)["path"] == path


def test_at_the_cap_the_longest_idle_is_closed_first(capped: InProcess) -> None:
    first, second, third = (capped.connect() for _ in range(3))
    assert served(second)  # idle again after its answer: now younger than the third
    wait_for(lambda: capped.connections() == 3)
    fresh = capped.connect()
    assert served(fresh)
    assert closed_by_server(first)
    assert served(third)  # third: the longest idle now
    newer = capped.connect()
    assert served(newer)
    assert closed_by_server(second)
    for client in (first, second, third, fresh, newer):
        client.close()


def test_at_the_cap_with_none_idle_a_new_connection_is_refused(capped: InProcess) -> None:
    busy = [capped.connect() for _ in range(3)]
    for client in busy:
        client.sendall(request("/hold"))
    wait_for(lambda: capped.app.calls == 3)
    refused = capped.connect()
    assert closed_by_server(refused)
    capped.app.release.set()
    assert [read_answer(client)[0] for client in busy] == [200, 200, 200]
    for client in (*busy, refused):
        client.close()


def test_the_cap_stays_below_the_file_limit() -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert connection_cap(10) == min(10, soft - FD_RESERVE)
    assert connection_cap(10**6) == soft - FD_RESERVE
    assert connection_cap() == min(1024, soft - FD_RESERVE)


class _FailingAccept(socket.socket):
    """A listening socket whose accept fails as at the file limit, once told to."""

    failing = False
    failures = 0

    def accept(self) -> tuple[socket.socket, Any]:
        if self.failing:
            type(self).failures += 1
            raise OSError(errno.EMFILE, "Too many open files")
        return super().accept()


def test_accept_errors_log_a_few_lines_and_free_idle_connections(
    caplog: pytest.LogCaptureFixture, loop: str
) -> None:
    plain = bind("127.0.0.1", 0)
    sock = _FailingAccept(plain.family, plain.type, fileno=plain.detach())
    server = InProcess(LONG, max_connections=100, sock=sock, loop=loop).start()
    try:
        idle = [server.connect() for _ in range(30)]
        wait_for(lambda: server.connections() == 30)
        with caplog.at_level(logging.INFO, logger="intercom_sip"):
            _FailingAccept.failing = True
            waiting = server.connect()  # each failure closes one idle connection
            wait_for(lambda: server.connections() == 0)
        assert _FailingAccept.failures >= 30
        lines = [r for r in caplog.records if r.name.startswith("intercom_sip")]
        assert len([r for r in lines if "cannot accept" in r.message]) <= 6
        assert not any(r.exc_info for r in lines)
        assert len(lines) <= 12
        _FailingAccept.failing = False
        assert served(waiting)
        for client in (*idle, waiting):
            client.close()
    finally:
        _FailingAccept.failing = False
        server.stop()


def test_the_timeouts_sweep_runs_only_while_a_connection_is_open() -> None:
    instance = InProcess(Limits(timeout=0.4)).start()  # a sweep every 0.1 s while armed
    try:
        assert not instance.listener.sweeping  # no client: no timer at all
        client = instance.connect()
        wait_for(lambda: instance.listener.sweeping)
        assert closed_by_server(client)  # its timeout, found by the sweep
        wait_for(lambda: not instance.listener.sweeping)
        client.close()
    finally:
        instance.stop()
