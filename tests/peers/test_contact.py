"""Finding 8: bound to every address (`--sip-host 0.0.0.0`) and a registrar that adds
neither `rport` nor `received`: the Contact names the address the flow leaves from, and
a 200 is no reason to register again."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers import process
from tests.peers.ports import free_port
from tests.peers.registrar import Behaviour, Registrar
from tests.peers.test_agent import Device, registered, untokened

pytestmark = pytest.mark.peers
SCENARIO = Path(__file__).parent / "scenarios" / "registrar_no_rport.xml"
QUIET = 4.0  # seconds watched after the registration


class SippRegistrar:
    """SIPp as a registrar that echoes our Via unchanged: 200 OK, Expires 30, to all."""

    def __init__(self, sipp: str, transport: str, directory: Path) -> None:
        self.transport = transport
        self.port = free_port(both=True)
        self.messages = directory / f"sipp-{transport}.log"
        command = [sipp, "-sf", str(SCENARIO), "-i", "127.0.0.1", "-p", str(self.port)]
        command += ["-t", "u1" if transport == "udp" else "t1", "-nostdin"]
        command += ["-trace_msg", "-message_file", str(self.messages)]
        self.process = process.spawn(command, directory / f"sipp-{transport}.out")

    def registers(self) -> list[str]:
        """The REGISTER requests received so far, whole."""
        if not self.messages.exists():
            return []
        return requests_in(self.messages.read_text(errors="replace"))

    def close(self) -> None:
        process.terminate(self.process)


@pytest.fixture
def registrar(
    sipp: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[SippRegistrar]:
    made = SippRegistrar(sipp, request.param, tmp_path)
    try:
        yield made
    finally:
        made.close()


def requests_in(log: str) -> list[str]:
    """The REGISTER requests in SIPp's message log (one line says where each came from)."""
    return [chunk for chunk in log.split("\n\n") if "\nREGISTER sip:" in "\n" + chunk.lstrip("\n")]


@pytest.mark.parametrize("registrar", ["udp", "tcp"], indirect=True)
def test_a_contact_from_0000_is_never_sent_nor_re_registered(
    registrar: SippRegistrar, tmp_path: Path
) -> None:
    transport = registrar.transport
    device = Device(tmp_path / "data")
    device.extra = ("--sip-host", "0.0.0.0")
    device.start()
    try:
        device.post(
            {
                "enable": True,
                "proxy": f"127.0.0.1:{registrar.port}",
                "realm": "sipp.test",
                "user": "101",
                "password": "secret",
                "transport": transport,
                "user_id": "",
                "timeout": 120,
                "registration_interval": 30,
                "stun": {"ip": "", "port": 0},
            }
        )
        status = device.wait_status(registered)
        time.sleep(QUIET)  # what matters is what does not happen meanwhile
        sent = registrar.registers()
    finally:
        device.stop()
    contact = status["contact"]
    assert untokened(contact) == f"sip:101@127.0.0.1:{device.sip_port};transport={transport}"
    assert 1 <= len(sent) <= 2, f"{len(sent)} REGISTERs in {QUIET} s"
    assert all(f"Contact: <{contact}>" in request for request in sent), sent
    assert not any("0.0.0.0" in request for request in sent), sent


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_with_digest_and_no_rport_one_registration_holds(tmp_path: Path, transport: str) -> None:
    """The same with our registrar: a challenge first, and neither rport nor received."""
    with Registrar(Behaviour(rport=False, nonces="per-challenge")) as registrar:
        device = Device(tmp_path / "data")
        device.extra = ("--sip-host", "0.0.0.0")
        device.start()
        try:
            device.post(
                {
                    "enable": True,
                    "proxy": registrar.proxy,
                    "realm": "fake.test",
                    "user": "101",
                    "password": "secret",
                    "transport": transport,
                    "user_id": "",
                    "timeout": 120,
                    "registration_interval": 30,
                    "stun": {"ip": "", "port": 0},
                }
            )
            status = device.wait_status(registered)
            time.sleep(QUIET)
            codes = registrar.codes()
            bindings = registrar.bindings("101")
        finally:
            device.stop()
    contact = status["contact"]
    assert untokened(contact) == f"sip:101@127.0.0.1:{device.sip_port};transport={transport}"
    assert codes == [401, 200]
    assert bindings == [contact]
