"""The port hands each transaction's events to the user that opened it, and to no other
(as aioice hands each STUN response to its own transaction): a registration does not hear
the phone's responses, nor the phone the registration's."""

import asyncio
import random

from intercom_sip.address import Address
from intercom_sip.sip import core
from intercom_sip.sip.port import SipPort, UserEvent
from intercom_sip.sip.transactions import TransactionId
from intercom_sip.sip.transport import Flow
from tests.sip.test_core import UDP, drain, outgoing, parsed, reply


class Peer(Flow):
    """The proxy, over the shared UDP endpoint."""

    def __init__(self, remote: Address) -> None:
        self.transport, self.remote, self.local = "udp", remote, ("192.0.2.9", 5060)


class Heard:
    """A port user that keeps what the port hands it."""

    def __init__(self) -> None:
        self.events: list[UserEvent] = []

    def core_event(self, event: UserEvent) -> None:
        self.events.append(event)


def new_port(wire: list[bytes], registration: Heard, phone: Heard) -> SipPort:
    port = SipPort(core.Core(random.Random(1)))
    port.attach(lambda data, _: wire.append(data))
    port.add_user("registration", registration)
    port.add_user("phone", phone)
    return port


def test_each_response_reaches_the_user_that_opened_its_transaction_alone() -> None:
    wire: list[bytes] = []
    registration, phone = Heard(), Heard()

    async def scenario() -> tuple[TransactionId | None, TransactionId | None]:
        port = new_port(wire, registration, phone)
        ours = port.request(outgoing("REGISTER"), UDP, "registration")
        theirs = port.request(outgoing("OPTIONS"), UDP, "phone")
        port.pump()
        for data in reversed(wire):  # the phone's answered first: order tells nothing
            port.receive(reply(data, 200, "OK", "far"), Peer(UDP.remote))
        port.close()
        return ours, theirs

    ours, theirs = asyncio.run(scenario())
    assert ours is not None and theirs is not None
    ok = [parsed(reply(data, 200, "OK", "far")) for data in wire]
    assert registration.events == [core.ResponseReceived(ok[0], ours, "registration")]
    assert phone.events == [core.ResponseReceived(ok[1], theirs, "phone")]


def test_a_transport_error_reaches_the_owner_alone_and_a_gone_owner_hears_nothing() -> None:
    registration, phone = Heard(), Heard()

    async def scenario() -> TransactionId | None:
        port = new_port([], registration, phone)
        ours = port.request(outgoing("REGISTER"), UDP, "registration")
        theirs = port.request(outgoing("OPTIONS"), UDP, "phone")
        assert ours is not None and theirs is not None
        port.fail(ours)
        port.remove_user("phone")
        port.fail(theirs)  # its owner is gone: dropped, nobody else hears of it
        port.close()
        return ours

    ours = asyncio.run(scenario())
    assert ours is not None
    assert (registration.events, phone.events) == ([core.TransportError(ours, "registration")], [])


def test_the_core_keeps_each_owner_with_its_transaction_to_its_timeout() -> None:
    """Pure core: the owner is the transaction table's; it ends with the entry (Timer F)."""
    sip_core = core.Core(random.Random(1))
    ours = sip_core.request(outgoing("REGISTER"), UDP, 0.0, owner="registration")
    theirs = sip_core.request(outgoing("OPTIONS"), UDP, 0.0, owner="phone")
    sip_core.tick(32.0)
    timeouts = [e for e in drain(sip_core) if isinstance(e, core.TransactionTimedOut)]
    assert ours is not None and theirs is not None
    assert timeouts == [
        core.TransactionTimedOut(ours, "registration"),
        core.TransactionTimedOut(theirs, "phone"),
    ]
    assert sip_core.deadline() is None
