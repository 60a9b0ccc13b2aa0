"""The STUN adapter: datagrams built and read with aioice, and `query` over a fake socket."""

import asyncio
import random
import struct
import time
from typing import Any

import pytest
from aioice import stun as aioice_stun

from intercom_sip.sip.stun import (
    binding_request,
    is_stun,
    mapped_address,
    query,
    transmission_times,
)

Address = tuple[str, int]
MAPPED = ("203.0.113.5", 40000)
SERVER = ("192.0.2.10", 3478)


def response(
    transaction_id: bytes,
    attributes: dict[str, Any] | None = None,
    message_class: aioice_stun.Class = aioice_stun.Class.RESPONSE,
) -> bytes:
    """A Binding answer to `transaction_id`, as a STUN server would send it."""
    message = aioice_stun.Message(
        aioice_stun.Method.BINDING,
        message_class,
        transaction_id=transaction_id,
        attributes={"XOR-MAPPED-ADDRESS": MAPPED} if attributes is None else attributes,
    )
    message.add_fingerprint()
    return bytes(message)


def test_the_request_is_a_binding_request_with_a_fingerprint() -> None:
    transaction_id, datagram = binding_request()
    message = aioice_stun.parse_message(datagram)  # checks the fingerprint, too
    assert (
        message.message_method,
        message.message_class,
        message.transaction_id,
        list(message.attributes),
        is_stun(datagram),
    ) == (
        aioice_stun.Method.BINDING,
        aioice_stun.Class.REQUEST,
        transaction_id,
        ["FINGERPRINT"],
        True,
    )


def test_each_request_has_its_own_transaction_id() -> None:
    assert len({binding_request()[0] for _ in range(100)}) == 100


def test_the_xor_mapped_address_of_the_answer_is_read() -> None:
    transaction_id, _ = binding_request()
    assert mapped_address(response(transaction_id), transaction_id) == MAPPED


def test_a_plain_mapped_address_serves_when_there_is_no_xor_one() -> None:
    transaction_id, _ = binding_request()
    answer = response(transaction_id, {"MAPPED-ADDRESS": ("198.51.100.1", 5060)})
    assert mapped_address(answer, transaction_id) == ("198.51.100.1", 5060)


def test_the_xor_mapped_address_wins_over_the_plain_one() -> None:
    transaction_id, _ = binding_request()
    attributes = {"MAPPED-ADDRESS": ("198.51.100.1", 5060), "XOR-MAPPED-ADDRESS": MAPPED}
    assert mapped_address(response(transaction_id, attributes), transaction_id) == MAPPED


def test_an_answer_to_another_transaction_is_none() -> None:
    transaction_id, _ = binding_request()
    other, _ = binding_request()
    assert mapped_address(response(other), transaction_id) is None


@pytest.mark.parametrize(
    ("message_class", "attributes"),
    [
        (aioice_stun.Class.ERROR, {"ERROR-CODE": (400, "Bad Request")}),
        (aioice_stun.Class.ERROR, {"XOR-MAPPED-ADDRESS": MAPPED}),
        (aioice_stun.Class.REQUEST, {"XOR-MAPPED-ADDRESS": MAPPED}),
        (aioice_stun.Class.RESPONSE, {}),
        (aioice_stun.Class.RESPONSE, {"SOFTWARE": "coturn"}),
    ],
)
def test_anything_but_a_success_with_an_address_is_none(
    message_class: aioice_stun.Class, attributes: dict[str, Any]
) -> None:
    transaction_id, _ = binding_request()
    answer = response(transaction_id, attributes, message_class)
    assert (is_stun(answer), mapped_address(answer, transaction_id)) == (True, None)


TID = bytes(range(12))
GOOD = response(TID)
HEADER = struct.Struct("!HHI12s")


def with_attribute(kind: int, value: bytes) -> bytes:
    """A Binding success response to TID holding one raw attribute."""
    padded = value + bytes(-len(value) % 4)
    body = struct.pack("!HH", kind, len(value)) + padded
    return HEADER.pack(0x0101, len(body), 0x2112A442, TID) + body


@pytest.mark.parametrize(
    ("datagram", "stun"),
    [
        (b"", False),
        (b"\r\n\r\n", False),  # the CRLF keep-alive
        (b"\r\n", False),
        (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060\r\nContent-Length: 0\r\n\r\n", False),
        (b"REGISTER sip:pbx.example.com SIP/2.0\r\nCall-ID: abcdefghijklmnop\r\n\r\n", False),
        (b"\x00\x01\x00\x00" + b"\x00" * 16, False),  # no magic cookie: RFC 3489
        (GOOD[:19], False),
        (GOOD[:-4], True),  # the length field no longer matches
        (GOOD[:-1] + bytes([GOOD[-1] ^ 1]), True),  # a wrong fingerprint
        (with_attribute(0x0020, b"\x00\x01\x12"), True),  # an address too short
        (with_attribute(0x0020, b"\x00\x03" + bytes(6)), True),  # an unknown family
        (with_attribute(0x0001, b"\x00\x01" + bytes(7)), True),  # IPv4 of the wrong length
        (with_attribute(0x8028, b"\x01\x02"), True),  # a FINGERPRINT of 2 bytes
        (with_attribute(0x8022, b"\xff\xfe"), True),  # SOFTWARE that is not UTF-8
        (with_attribute(0x0009, b"\x00"), True),  # a short ERROR-CODE
        (HEADER.pack(0x0FFF, 0, 0x2112A442, TID), True),  # an unknown method
    ],
)
def test_garbage_is_none_and_never_raises(datagram: bytes, stun: bool) -> None:
    assert (is_stun(datagram), mapped_address(datagram, TID)) == (stun, None)


def test_random_damage_never_raises() -> None:
    rng = random.Random(5389)
    valid = response(TID, {"XOR-MAPPED-ADDRESS": MAPPED, "MAPPED-ADDRESS": MAPPED})
    results = set()
    for _ in range(3000):
        damaged = bytearray(valid)
        for _ in range(rng.randint(1, 3)):
            damaged[rng.randrange(4, len(damaged))] = rng.randrange(256)
        results.add(mapped_address(bytes(damaged[: rng.randint(0, len(damaged))]), TID))
    # A damaged FINGERPRINT type or length leaves a message without one, which is valid:
    # such an address may come back changed. The point is that nothing raises.
    assert {type(result) for result in results} == {type(None), tuple}


@pytest.mark.parametrize(
    ("timeout", "times"),
    [
        (0.0, []),
        (0.5, [0.0]),
        (1.6, [0.0, 0.5, 1.5]),
        (3.5, [0.0, 0.5, 1.5]),
        (60.0, [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]),  # RFC 5389 §7.2.1: at most 7
    ],
)
def test_transmissions_double_their_interval(timeout: float, times: list[float]) -> None:
    assert transmission_times(timeout) == times


class FakeServer:
    """Stands for the SIP socket and a STUN server behind it: it records what is sent."""

    def __init__(self, answer_at: int | None, stale_first: bool = False) -> None:
        self.answers: asyncio.Queue[bytes] = asyncio.Queue()
        self.sent: list[tuple[float, bytes, Address]] = []
        self._answer_at = answer_at  # answer the n-th transmission (1-based)
        self._stale_first = stale_first
        self._started = time.monotonic()

    def send(self, datagram: bytes, server: Address) -> None:
        self.sent.append((time.monotonic() - self._started, datagram, server))
        if len(self.sent) == self._answer_at:
            transaction_id = aioice_stun.parse_message(datagram).transaction_id
            if self._stale_first:
                self.answers.put_nowait(response(bytes(12), {"XOR-MAPPED-ADDRESS": SERVER}))
                self.answers.put_nowait(b"garbage")
            self.answers.put_nowait(response(transaction_id))


def run_query(server: FakeServer | None, timeout: float, **options: Any) -> Any:
    async def scenario() -> tuple[Address | None, FakeServer]:
        fake = server or FakeServer(**options)
        return await query(fake.send, fake.answers, SERVER, timeout), fake

    return asyncio.run(scenario())


def test_query_returns_the_mapped_address_of_the_first_answer() -> None:
    result, fake = run_query(None, 2.0, answer_at=1)
    assert (result, [(datagram, to) for _, datagram, to in fake.sent]) == (
        MAPPED,
        [(fake.sent[0][1], SERVER)],
    )


def slots(sent: list[tuple[float, bytes, Address]], due: list[float]) -> list[bool]:
    """Whether each transmission went at its time or later, before the next one's: a
    loaded machine only delays them (the exact times are transmission_times', above)."""
    ends = [*due[1:], due[-1] * 2 + 0.5]
    return [start <= at < end for (at, _, _), start, end in zip(sent, due, ends, strict=True)]


def test_query_retransmits_until_answered() -> None:
    result, fake = run_query(None, 3.0, answer_at=2)
    datagrams = {datagram for _, datagram, _ in fake.sent}
    assert (result, slots(fake.sent, [0.0, 0.5]), len(datagrams)) == (MAPPED, [True, True], 1)


def test_query_skips_stale_and_broken_answers() -> None:
    result, _ = run_query(None, 2.0, answer_at=1, stale_first=True)
    assert result == MAPPED


def test_query_without_an_answer_is_none_within_the_timeout() -> None:
    started = time.monotonic()
    result, fake = run_query(None, 1.6, answer_at=None)
    elapsed = time.monotonic() - started
    # Given up at 1.6 s, not at the next transmission's time (3.5 s) or later.
    assert (result, slots(fake.sent, [0.0, 0.5, 1.5]), 1.6 <= elapsed < 3.5) == (
        None,
        [True, True, True],
        True,
    )


def test_query_survives_a_socket_that_fails_to_send() -> None:
    def broken(datagram: bytes, server: Address) -> None:
        raise OSError(101, "Network is unreachable")

    async def scenario() -> Address | None:
        return await query(broken, asyncio.Queue(), SERVER, 0.6)

    assert asyncio.run(scenario()) is None
