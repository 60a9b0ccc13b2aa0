"""STUN Binding (RFC 5389) on the SIP agent's own UDP socket: the adapter to `aioice.stun`.

The request goes out on the SIP socket so that the mapping found is the SIP port's. The
pure functions build and read datagrams; `query` only adds the retransmissions and the wait
for the answer, which the transport puts on a queue once `is_stun` has told it from SIP.
"""

import asyncio
import logging
import struct
from collections.abc import Callable
from typing import Final

from aioice import stun

from intercom_sip.address import Address

logger = logging.getLogger(__name__)


# RFC 5389 §7.2.1: RTO 500 ms, doubled after each of at most 7 transmissions.
_RTO: Final = 0.5
_TRANSMISSIONS: Final = 7
_ADDRESS_ATTRIBUTES: Final = ("XOR-MAPPED-ADDRESS", "MAPPED-ADDRESS")  # RFC 3489 servers


def binding_request() -> tuple[bytes, bytes]:
    """A new Binding request with FINGERPRINT: (transaction id, datagram)."""
    message = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    # FINGERPRINT lets the server tell our request from the SIP on the same port
    # (RFC 5389 §8), as `is_stun` does for the answer.
    message.add_fingerprint()
    return message.transaction_id, bytes(message)


def is_stun(datagram: bytes) -> bool:
    """Whether a datagram on the SIP socket is STUN: two zero bits, then the magic cookie.

    SIP text starts with a letter (bits 01), and a CRLF keep-alive is too short.
    """
    return (
        len(datagram) >= stun.HEADER_LENGTH
        and datagram[0] & 0xC0 == 0
        and int.from_bytes(datagram[4:8], "big") == stun.COOKIE
    )


def mapped_address(datagram: bytes, transaction_id: bytes) -> Address | None:
    """The address a Binding success response to `transaction_id` reports; else None."""
    message = _parse(datagram)
    if message is None or (
        message.message_method,
        message.message_class,
        message.transaction_id,
    ) != (stun.Method.BINDING, stun.Class.RESPONSE, transaction_id):
        return None
    for name in _ADDRESS_ATTRIBUTES:
        match message.attributes.get(name):
            case (str(host), int(port)):
                return host, port
    return None


def _parse(datagram: bytes) -> stun.Message | None:
    if not is_stun(datagram):
        return None
    try:
        return stun.parse_message(datagram)
    # aioice reports bad lengths, fingerprints and values as ValueError (UnicodeDecodeError
    # included), and an attribute too short for its type as struct.error.
    except (ValueError, struct.error) as error:
        logger.debug("malformed STUN datagram: %s", error)
        return None


def transmission_times(timeout: float) -> list[float]:
    """When to send, in seconds from the first try: 0, 0.5, 1.5, 3.5... within `timeout`."""
    times = [_RTO * (2**n - 1) for n in range(_TRANSMISSIONS)]
    return [time for time in times if time < timeout]


async def query(
    sock_send: Callable[[bytes, Address], None],
    answers: asyncio.Queue[bytes],
    server: Address,
    timeout: float,  # noqa: ASYNC109 - the whole exchange, retransmissions included
) -> Address | None:
    """The address `server` sees us at, or None if it does not say in time; never raises.

    `sock_send` sends on the SIP socket; `answers` receives the STUN datagrams that
    arrive on it. Answers to other transactions are dropped.
    """
    transaction_id, request = binding_request()
    loop = asyncio.get_running_loop()
    sends = [
        loop.call_later(delay, _send, sock_send, request, server)
        for delay in transmission_times(timeout)
    ]
    try:
        async with asyncio.timeout(timeout):
            return await _answer(answers, transaction_id)
    except TimeoutError:
        logger.info("no STUN answer from %s:%d in %.1f s", *server, timeout)
        return None
    finally:
        for handle in sends:
            handle.cancel()


async def _answer(answers: asyncio.Queue[bytes], transaction_id: bytes) -> Address:
    while True:
        address = mapped_address(await answers.get(), transaction_id)
        if address is not None:
            return address


def _send(sock_send: Callable[[bytes, Address], None], request: bytes, server: Address) -> None:
    try:
        sock_send(request, server)
    # Best effort: a failed send is one lost transmission, and the next may get through.
    except (OSError, RuntimeError, ValueError) as error:
        logger.debug("STUN request to %s:%d not sent: %s", *server, error)
