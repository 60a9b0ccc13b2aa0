"""A request's body as the app receives it: each piece httptools gives is kept as it came
(one piece: no copy), several are joined in order, and what the app took is gone."""

import asyncio
from typing import Any

import pytest

from intercom_sip.api import h1
from intercom_sip.api.connection import Limits, _Cycle


class Conn:
    """The connection, as far as a cycle's body needs it."""

    _limits = Limits()

    def __init__(self) -> None:
        self.taken = 0

    def body_taken(self) -> None:
        self.taken += 1

    def continue_if_asked(self, cycle: Any) -> None:
        pass


def cycle() -> _Cycle:
    return _Cycle(Conn(), {}, h1.Head(True, False, False))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "pieces",
    [
        [b'{"a": 1}'],
        [b"a", b"b"],
        [b"ab", b"", b"cd", b"e"],
        [b"x" * 1000, b"y" * 7, b"z" * 3000],
    ],
)
def test_the_pieces_fed_before_the_app_reads_come_joined_in_order(pieces: list[bytes]) -> None:
    body = cycle()
    kept = [bytes(piece) for piece in pieces]
    for piece in pieces:
        body.feed(piece)
    body.end_body()
    message = asyncio.run(body.receive())
    assert message == {"type": "http.request", "body": b"".join(kept), "more_body": False}
    assert type(message["body"]) is bytes
    assert pieces == kept  # the pieces given are not changed by the joining


def test_what_the_app_took_is_not_given_again() -> None:
    body = cycle()

    async def read() -> list[Any]:
        body.feed(b"ab")
        first = await body.receive()
        body.feed(b"c")
        body.feed(b"de")
        second = await body.receive()
        body.feed(b"f")
        body.end_body()
        return [first, second, await body.receive()]

    assert asyncio.run(read()) == [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cde", "more_body": True},
        {"type": "http.request", "body": b"f", "more_body": False},
    ]


def test_the_body_buffer_counts_every_piece_kept() -> None:
    body = cycle()
    size = Limits().body_buffer
    body.feed(b"x" * (size - 2))
    assert not body.body_full()
    body.feed(b"yy")
    assert body.body_full()
