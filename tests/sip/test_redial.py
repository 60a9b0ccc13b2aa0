"""A call whose TCP/TLS connection is gone (CONTRACT §6.10, RFC 3261 §18.1.1): the phone's
shell holds the in-dialog request, opens one new connection to the dialog's next hop and
sends it there; `redial.open_for_dialog` verifies a new TLS connection as the registration
does. Real sockets on 127.0.0.1, a real port core."""

import asyncio
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest

from intercom_sip.address import Address
from intercom_sip.agent.phoneshell import MAX_HELD, Line, PhoneOptions, PhoneShell
from intercom_sip.media.ports import PortPool, PortRange
from intercom_sip.media.source import Loop, tone
from intercom_sip.sip import callevents, core, transactions
from intercom_sip.sip.callevents import SendRequest
from intercom_sip.sip.dialog import Hop
from intercom_sip.sip.message import Headers, Request
from intercom_sip.sip.port import SipPort, core_flow
from intercom_sip.sip.redial import open_for_dialog
from intercom_sip.sip.registrant import SipEnv
from intercom_sip.sip.resolve import Resolver
from intercom_sip.sip.transactions import TransactionId
from intercom_sip.sip.transport import FlowError, StreamFlow, TlsOptions
from tests.peers import certs
from tests.test_phoneshell import CallLog, settings, to_tag

PATIENCE: Final = 5.0


class Proxy:
    """A TCP (or TLS) listener on 127.0.0.1 that keeps what each connection sent."""

    def __init__(self) -> None:
        self.received: list[bytearray] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self, tls: ssl.SSLContext | None = None) -> Address:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        host, port = self.server.sockets[0].getsockname()[:2]
        return host, port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = bytearray()
        self.received.append(data)
        self.writers.append(writer)
        while chunk := await reader.read(65536):
            data += chunk

    def drop(self) -> None:
        """Close every connection, as a restarted proxy does."""
        for writer in self.writers:
            writer.close()

    def close(self) -> None:
        self.drop()
        if self.server is not None:
            self.server.close()


@dataclass
class Redialer:
    """Connects for real to the hop it is asked for; `gate` holds it back."""

    port: SipPort
    asked: list[tuple[Hop, str]] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    fail: bool = False

    async def open_flow(self, hop: Hop, transport: str) -> core.Channel:
        self.asked.append((hop, transport))
        await self.gate.wait()
        if self.fail:
            raise FlowError("connection refused")
        host, _, number = hop.host_port.rpartition(":")
        flow = await StreamFlow.connect(
            transport,
            remote=(host, int(number)),
            receive=self.port.receive,
            closed=self.port.flow_closed,
            tls=None,
            server_name=None,
        )
        return core_flow(flow)


@dataclass
class Lines:
    current: Line

    def line(self) -> Line | None:
        return self.current


@dataclass
class Rig:
    shell: PhoneShell
    port: SipPort
    proxy: Proxy
    redialer: Redialer
    flow: StreamFlow  # the registration's connection, which the proxy drops
    address: Address

    def receive(self, text: str) -> None:
        self.port.receive(text.replace("\n", "\r\n").encode(), self.flow)


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(PATIENCE):
        while not check():  # noqa: ASYNC110 - the checks read buffers, not events
            await asyncio.sleep(0.01)


def run(test: Callable[[Rig], Awaitable[None]]) -> None:
    async def main() -> None:
        port = SipPort(core.Core(random.Random(1), transactions.SipTimers(t1=0.05)))
        port.attach(lambda data, address: None)
        proxy = Proxy()
        address = await proxy.start()
        flow = await StreamFlow.connect(
            "tcp",
            remote=address,
            receive=port.receive,
            closed=port.flow_closed,
            tls=None,
            server_name=None,
        )
        line = Line(
            "101",
            "example.test",
            "sip:101@example.test",
            None,
            "sip:101@127.0.0.1:5060;transport=tcp",
            core_flow(flow),
            bound=True,
        )
        source = tone()
        assert isinstance(source, Loop)
        options = callevents.Options(
            auto_answer_delay=0.01, timers=transactions.SipTimers(t1=0.05)
        )
        redialer = Redialer(port)
        shell = PhoneShell(
            port,
            Lines(line),
            pool=PortPool(PortRange(41300, 41400)),
            source=source,
            call_log=CallLog(),
            options=PhoneOptions(options, "127.0.0.1"),
            rng=random.Random(2),
            redialer=redialer,
        )
        shell.start()
        shell.apply(settings(transport="tcp"))
        shell.set_auto_answer(True)
        try:
            await test(Rig(shell, port, proxy, redialer, flow, address))
        finally:
            await shell.close(0.1)
            port.close()
            flow.close()
            proxy.close()

    asyncio.run(asyncio.wait_for(main(), 4 * PATIENCE))


def invite(address: Address) -> str:
    sdp = (
        "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\n"
        "m=audio 41998 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n"
    )
    return (
        "INVITE sip:101@127.0.0.1:5060;transport=tcp SIP/2.0\n"
        f"Via: SIP/2.0/TCP {address[0]}:{address[1]};branch=z9hG4bKinv1\n"
        f"Record-Route: <sip:{address[0]}:{address[1]};transport=tcp;lr>\n"
        "From: <sip:door@example.test>;tag=d1\nTo: <sip:101@example.test>\n"
        "Call-ID: call-1\nCSeq: 1 INVITE\nContact: <sip:door@192.0.2.50:5070>\n"
        "Max-Forwards: 70\nContent-Type: application/sdp\n"
        f"Content-Length: {len(sdp.replace(chr(10), chr(13) + chr(10)))}\n\n{sdp}"
    )


async def active_call(rig: Rig) -> None:
    """An incoming call on the registration's connection, answered and ACKed; then the
    proxy drops the connection."""
    rig.receive(invite(rig.address))
    await until(lambda: b"SIP/2.0 200 OK" in rig.proxy.received[0])
    ok = bytes(rig.proxy.received[0]).decode().partition("SIP/2.0 200 OK")[2]
    tag = to_tag("SIP/2.0 200 OK" + ok)
    rig.receive(
        "ACK sip:101@127.0.0.1:5060;transport=tcp SIP/2.0\n"
        f"Via: SIP/2.0/TCP {rig.address[0]}:{rig.address[1]};branch=z9hG4bKack1\n"
        f"From: <sip:door@example.test>;tag=d1\nTo: <sip:101@example.test>;tag={tag}\n"
        "Call-ID: call-1\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n"
    )
    assert rig.shell.status().state == "active"
    rig.proxy.drop()
    await until(lambda: not rig.flow.open)


def test_a_bye_whose_connection_is_gone_goes_on_a_new_one_to_the_route() -> None:
    async def test(rig: Rig) -> None:
        await active_call(rig)
        rig.redialer.gate.set()
        assert rig.shell.hangup().state == "idle"  # type: ignore[union-attr]
        await until(lambda: len(rig.proxy.received) == 2 and b"\r\n\r\n" in rig.proxy.received[1])
        bye = bytes(rig.proxy.received[1]).decode()
        assert bye.startswith("BYE sip:door@192.0.2.50:5070 SIP/2.0\r\n"), bye
        assert f"\r\nRoute: <sip:{rig.address[0]}:{rig.address[1]};transport=tcp;lr>\r\n" in bye
        host_port = f"{rig.address[0]}:{rig.address[1]}"
        assert rig.redialer.asked == [(Hop(host_port, "tcp"), "tcp")]

    run(test)


def test_requests_waiting_for_a_new_connection_are_bounded_and_share_it() -> None:
    async def test(rig: Rig) -> None:
        await active_call(rig)
        dead = core_flow(rig.flow)
        route = f"<sip:{rig.address[0]}:{rig.address[1]};transport=tcp;lr>"
        outputs: callevents.Outputs = [
            SendRequest(
                Request(
                    "OPTIONS",
                    "sip:door@192.0.2.50:5070",
                    Headers(
                        (
                            ("Via", f"SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKo{n}"),
                            ("Route", route),
                            ("From", "<sip:101@example.test>;tag=a"),
                            ("To", "<sip:door@example.test>;tag=d1"),
                            ("Call-ID", "call-1"),
                            ("CSeq", f"{10 + n} OPTIONS"),
                        )
                    ),
                    b"",
                ),
                dead,
                TransactionId(False, f"z9hG4bKo{n}", "OPTIONS"),
            )
            for n in range(MAX_HELD + 2)
        ]
        rig.shell._carry_out(outputs)  # more than the shell may hold at once
        await asyncio.sleep(0.05)
        assert len(rig.redialer.asked) == 1  # one connection at a time
        rig.redialer.gate.set()
        await until(lambda: len(rig.proxy.received) == 2)
        await until(lambda: rig.proxy.received[1].count(b"OPTIONS sip:door@") == MAX_HELD)
        await asyncio.sleep(0.05)
        assert len(rig.proxy.received) == 2  # all on the one new connection
        assert rig.proxy.received[1].count(b"OPTIONS sip:door@") == MAX_HELD

    run(test)


def test_no_new_connection_leaves_the_call_ended_here() -> None:
    async def test(rig: Rig) -> None:
        await active_call(rig)
        rig.redialer.fail = True
        rig.redialer.gate.set()
        rig.shell.hangup()
        await until(lambda: rig.redialer.asked != [])
        await asyncio.sleep(0.05)
        assert len(rig.proxy.received) == 1
        assert rig.shell.status().state == "idle"

    run(test)


# --- open_for_dialog over TLS: verified as the registration's connection ----------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, ssl.SSLContext]:
    """Our CA, a CA we do not trust, and a server context for 127.0.0.1 signed by ours."""
    directory = tmp_path_factory.mktemp("pki")
    ours, rogue = certs.make_ca(directory, "ours"), certs.make_ca(directory, "rogue")
    pair = certs.issue(ours, directory, "server", ("localhost", "127.0.0.1"))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pair.cert, pair.key)
    return ours.cert, rogue.cert, server


def env(ca: Path, port: SipPort) -> SipEnv:
    return SipEnv(
        endpoint=None,  # type: ignore[arg-type]  # TCP/TLS only here
        resolver=Resolver(),
        tls=TlsOptions(ca_file=str(ca)),
        instance="urn:uuid:00000000-0000-0000-0000-000000000000",
        user_agent="test",
        port=port,
        receive=port.receive,
    )


@pytest.mark.parametrize(
    ("trusted", "outcome"), [(True, "open"), (False, "TLS verification failed")]
)
def test_a_new_tls_connection_is_verified(
    pki: tuple[Path, Path, ssl.SSLContext], trusted: bool, outcome: str
) -> None:
    ours, rogue, server = pki

    async def main() -> str:
        port = SipPort(core.Core(random.Random(1)))
        proxy = Proxy()
        host, number = await proxy.start(server)
        try:
            flow = await open_for_dialog(
                Hop(f"{host}:{number}", "tls"),
                "tls",
                env=env(ours if trusted else rogue, port),
                binding=None,
                closed=port.flow_closed,
            )
        except FlowError as exc:
            return str(exc)
        finally:
            proxy.close()
        assert isinstance(flow.key, StreamFlow) and flow.key.transport == "tls"
        flow.key.close()
        return "open"

    assert asyncio.run(main()) == outcome
