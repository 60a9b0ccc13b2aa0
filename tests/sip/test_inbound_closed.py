"""A connection made to our SIP port that closes is told to the port's core: its server
transactions end with a transport error, so a call ringing on it ends instead of waiting
for its timers."""

import asyncio
import random

from intercom_sip.sip import core, transactions
from intercom_sip.sip.port import SipPort, UserEvent
from intercom_sip.sip.transport import Inbound, InboundLimits

INVITE = (
    b"INVITE sip:101@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKclosed1\r\n"
    b"From: <sip:door@127.0.0.1>;tag=1\r\nTo: <sip:101@127.0.0.1>\r\n"
    b"Call-ID: closed-1\r\nCSeq: 1 INVITE\r\nContact: <sip:door@127.0.0.1:9;transport=tcp>\r\n"
    b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
)


class Heard:
    """A port user that answers nothing and keeps what the core tells it."""

    def __init__(self) -> None:
        self.events: list[UserEvent] = []
        self.changed = asyncio.Event()

    def core_event(self, event: UserEvent) -> None:
        self.events.append(event)
        self.changed.set()

    async def wait(self, kind: type) -> UserEvent:
        async with asyncio.timeout(10):
            while True:
                found = [e for e in self.events if isinstance(e, kind)]
                if found:
                    return found[0]
                self.changed.clear()
                await self.changed.wait()


def test_a_closed_inbound_connection_ends_its_server_transactions() -> None:
    async def scenario() -> tuple[str, object, object]:
        # Timers long enough that nothing but the closing can end the transaction.
        port = SipPort(core.Core(random.Random(1), transactions.SipTimers(t1=30.0)))
        heard = Heard()
        port.add_user("phone", heard)
        port.core.add_user("101", "phone")
        inbound = Inbound(port.receive, InboundLimits(), closed=port.flow_closed)
        server = await asyncio.get_running_loop().create_server(inbound.protocol, "127.0.0.1", 0)
        try:
            _, writer = await asyncio.open_connection(
                "127.0.0.1", server.sockets[0].getsockname()[1]
            )
            writer.write(INVITE)
            received = await heard.wait(core.RequestReceived)
            writer.close()
            failed = await heard.wait(core.TransportError)
        finally:
            inbound.close()
            server.close()
            port.close()
        assert isinstance(received, core.RequestReceived)
        assert isinstance(failed, core.TransportError)
        return received.request.method, failed.transaction_id, received.transaction_id

    method, failed, started = asyncio.run(scenario())
    assert (method, failed) == ("INVITE", started)
