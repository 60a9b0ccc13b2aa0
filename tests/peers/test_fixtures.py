"""The peer fixtures work against real clients: SIPp, Python's ssl, a hand-made STUN client."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from . import binaries, kamcmd, ports, sipclient, stun
from .coturn import Coturn, PortBusy
from .kamailio import Kamailio, MakeKamailio
from .ports import free_port
from .relay import UdpRelay

peers = pytest.mark.peers

INSTANCE = "<urn:uuid:00000000-0000-0000-0000-000000000101>"

# REGISTER, take the 401, answer it with SIPp's digest, expect 200 (SIPp 3.6.1 syntax).
REGISTER_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register with digest">
  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[service]@[remote_ip]>;tag=[pid]SIPpTag[call_number]
To: <sip:[service]@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: @CONTACT@
Expires: 30
Max-Forwards: 70
User-Agent: sipp-test
Content-Length: 0

  ]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[service]@[remote_ip]>;tag=[pid]SIPpTag[call_number]
To: <sip:[service]@[remote_ip]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: @CONTACT@
Expires: 30
Max-Forwards: 70
User-Agent: sipp-test
[authentication username=@USER@ password=@PASSWORD@]
Content-Length: 0

  ]]></send>
  <recv response="200"/>
</scenario>
"""

CONTACT = (
    "<sip:[service]@[local_ip]:[local_port];transport=[transport]>"
    ';+sip.instance="@INSTANCE@";reg-id=1'
)

# What `kamcmd ul.lookup location s:101` printed here (Kamailio 5.6.3), trimmed of lines
# the parser ignores.
UL_LOOKUP_SAMPLE = """{
\tAoR: 101
\tContacts: {
\t\tContact: {
\t\t\tAddress: sip:101@127.0.0.1:15070;transport=TCP
\t\t\tExpires: 23
\t\t\tQ: -1
\t\t\tCall-ID: 1-6090@127.0.0.1
\t\t\tCSeq: 2
\t\t\tUser-Agent: sipp-test
\t\t\tReceived: [not set]
\t\t\tPath: [not set]
\t\t\tSocket: tcp:127.0.0.1:15060
\t\t\tInstance: <urn:uuid:00000000-0000-0000-0000-000000000001>
\t\t\tReg-Id: 1
\t\t}
\t\tContact: {
\t\t\tAddress: sip:101@127.0.0.1:5999
\t\t\tExpires: permanent
\t\t\tCSeq: 7
\t\t\tUser-Agent: [not set]
\t\t\tReceived: sip:127.0.0.1:40000
\t\t\tSocket: udp:127.0.0.1:15060
\t\t\tInstance: [not set]
\t\t\tReg-Id: 0
\t\t}
\t}
}
"""


def run_sipp(sipp: str, server: Kamailio, transport: str, workdir: Path) -> int:
    """Register user 101 with SIPp over `transport` (u1 or t1); return SIPp's local port."""
    scenario = workdir / "register.xml"
    contact = CONTACT.replace("@INSTANCE@", INSTANCE)
    scenario.write_text(
        REGISTER_XML.replace("@CONTACT@", contact)
        .replace("@USER@", "101")
        .replace("@PASSWORD@", server.users["101"])
    )
    port = free_port(both=True)
    command = [sipp, f"127.0.0.1:{server.sip_port}", "-sf", str(scenario), "-s", "101"]
    command += ["-i", "127.0.0.1", "-p", str(port), "-t", transport, "-m", "1"]
    command += ["-timeout", "10s", "-nostdin", "-trace_msg"]
    done = subprocess.run(
        command, cwd=workdir, capture_output=True, text=True, timeout=20, check=False
    )
    messages = "".join(p.read_text() for p in workdir.glob("*_messages.log"))
    assert done.returncode == 0, f"sipp failed:\n{done.stderr}\n{messages}"
    return port


def test_parse_bindings_reads_kamcmd_output() -> None:
    first, second = kamcmd.parse_bindings(UL_LOOKUP_SAMPLE)
    assert first == kamcmd.Binding(
        aor="101",
        contact="sip:101@127.0.0.1:15070;transport=TCP",
        expires=23,
        received=None,
        socket="tcp:127.0.0.1:15060",
        instance="<urn:uuid:00000000-0000-0000-0000-000000000001>",
        reg_id=1,
        user_agent="sipp-test",
        call_id="1-6090@127.0.0.1",
        cseq=2,
    )
    assert (second.expires, second.received, second.user_agent) == (
        None,
        "sip:127.0.0.1:40000",
        None,
    )
    assert (first.transport, second.transport) == ("tcp", "udp")


def test_a_missing_program_fails_naming_the_install_script() -> None:
    # The fixtures turn this error into pytest.fail(str(error)): a failure, never a skip.
    with pytest.raises(binaries.PeerMissing, match=r"run scripts/install-peers \(as root\)"):
        binaries.find("no-such-peer-program")


@peers
@pytest.mark.parametrize(("transport", "name"), [("u1", "UDP"), ("t1", "TCP")])
def test_sipp_registers_with_digest(
    kamailio: Kamailio, sipp: str, tmp_path: Path, transport: str, name: str
) -> None:
    port = run_sipp(sipp, kamailio, transport, tmp_path)

    [binding] = kamailio.bindings("101")
    assert binding.contact == f"sip:101@127.0.0.1:{port};transport={name}"
    assert binding.expires in {29, 30}  # a countdown: a second may tick before we look
    assert binding.socket == f"{name.lower()}:127.0.0.1:{kamailio.sip_port}"
    assert (binding.instance, binding.reg_id) == (INSTANCE, 1)
    assert (binding.user_agent, binding.received) == ("sipp-test", None)


def tls_context(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


@peers
@pytest.mark.parametrize("server_name", ["localhost", "127.0.0.1"])
def test_tls_register_verifies_the_test_ca(kamailio: Kamailio, server_name: str) -> None:
    server = ("127.0.0.1", kamailio.tls_port)
    context = tls_context(kamailio.ca_cert)
    with sipclient.Connection("tls", server, context, server_name=server_name) as conn:
        answer = sipclient.register(conn, "101", kamailio.users["101"], expires=30)
        port = conn.local[1]

    assert answer.status == 200
    [binding] = kamailio.bindings("101")
    assert binding.contact == f"sip:101@127.0.0.1:{port};transport=tls"
    assert binding.transport == "tls"


@peers
@pytest.mark.parametrize("certificate", ["untrusted", "wrong-name"])
def test_bad_certificate_fails_verification(
    kamailio_factory: MakeKamailio, certificate: str
) -> None:
    server = kamailio_factory(certificate=certificate)
    address = ("127.0.0.1", server.tls_port)

    with pytest.raises(ssl.SSLCertVerificationError):
        sipclient.Connection("tls", address, tls_context(server.ca_cert))


@peers
def test_changed_password_rejects_the_old_one(kamailio: Kamailio) -> None:
    server = ("127.0.0.1", kamailio.sip_port)
    old_password = kamailio.users["101"]
    kamailio.set_password("101", "changed")

    with sipclient.Connection("udp", server) as conn:
        old = sipclient.register(conn, "101", old_password)
        new = sipclient.register(conn, "101", "changed")

    assert (old.status, new.status) == (401, 200)
    kamailio.restart()  # passwords set at run time outlive a restart, as with a database
    with sipclient.Connection("udp", server) as conn:
        assert sipclient.register(conn, "101", "changed").status == 200


@peers
def test_auth_user_differs_from_aor_and_nat_is_recorded(kamailio: Kamailio) -> None:
    server = ("127.0.0.1", kamailio.sip_port)
    with sipclient.Connection("udp", server) as conn:
        # A Contact port that is not our source port: what a NAT'ed agent looks like.
        contact = "<sip:102@127.0.0.1:5999>"
        answer = sipclient.register(
            conn, "102", kamailio.users["u102"], contact=contact, auth_user="u102"
        )
        port = conn.local[1]

    assert answer.status == 200
    [binding] = kamailio.bindings("102")
    assert (binding.contact, binding.received) == (
        "sip:102@127.0.0.1:5999",
        f"sip:127.0.0.1:{port}",
    )


@peers
def test_below_min_expires_is_raised_by_default(kamailio: Kamailio) -> None:
    with sipclient.Connection("tcp", ("127.0.0.1", kamailio.sip_port)) as conn:
        answer = sipclient.register(conn, "101", kamailio.users["101"], expires=5)

    assert answer.status == 200
    assert (answer.header("Contact") or "").endswith(";expires=10")
    assert [b.expires for b in kamailio.bindings("101")] in ([10], [9])


@peers
def test_min_expires_mode_1_answers_423(kamailio_factory: MakeKamailio) -> None:
    server = kamailio_factory(min_expires=60, min_expires_mode=1)
    with sipclient.Connection("udp", ("127.0.0.1", server.sip_port)) as conn:
        answer = sipclient.register(conn, "101", server.users["101"], expires=30)

    assert (answer.status, answer.header("Min-Expires")) == (423, "60")
    assert server.bindings("101") == []


@peers
def test_restart_loses_bindings(kamailio: Kamailio) -> None:
    with sipclient.Connection("udp", ("127.0.0.1", kamailio.sip_port)) as conn:
        assert sipclient.register(conn, "101", kamailio.users["101"]).status == 200
    assert len(kamailio.bindings("101")) == 1

    kamailio.restart()

    assert kamailio.bindings("101") == []
    assert sipclient.answers_options(("127.0.0.1", kamailio.sip_port))


@peers
def test_invite_is_relayed_to_the_registered_contact(kamailio: Kamailio) -> None:
    server = ("127.0.0.1", kamailio.sip_port)
    with (
        sipclient.Connection("udp", server) as callee,
        sipclient.Connection("udp", server) as caller,
    ):
        assert sipclient.register(callee, "101", kamailio.users["101"]).status == 200
        uri = f"sip:101@127.0.0.1:{kamailio.sip_port}"
        dialog = sipclient.Dialog.new()
        caller.send(
            sipclient.request(caller, "INVITE", uri=uri, user="200", dialog=dialog, cseq=1)
        )

        invite = callee.receive()
        callee.send(sipclient.reply(invite, 486, "Busy Here"))
        answer = caller.receive_final()
        callee_port = callee.local[1]

    assert invite.start_line.startswith(f"INVITE sip:101@127.0.0.1:{callee_port}")
    assert invite.header("Record-Route") is not None
    assert answer.status == 486


@peers
def test_coturn_maps_a_direct_client_to_itself(coturn: Coturn) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        assert stun.query(sock, coturn.address) == sock.getsockname()
    assert coturn.strays() == []  # no alternate port beside the one it was given


@peers
def test_coturn_through_the_relay_maps_the_relay_port(coturn: Coturn) -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
        UdpRelay(coturn.address) as relay,
    ):
        sock.bind(("127.0.0.1", 0))
        mapped = stun.query(sock, relay.address)
        assert mapped == relay.outside(sock.getsockname())
        assert mapped != sock.getsockname()


@peers
def test_coturn_refuses_a_port_that_already_answers(coturn: Coturn) -> None:
    second = Coturn(coturn.port)
    with pytest.raises(PortBusy):
        second.start()
    second.close()


# Binds the first port it is given (udp/P or tcp/P) and has a child of its own bind the
# rest, so that a test sees a process and its descendants as a peer's fork would be.
BINDER = """
import os, socket, subprocess, sys, time
first, *rest = sys.argv[1:]
if rest:
    subprocess.Popen([sys.executable, "-c", os.environ["BINDER"], *rest])
kind, port = first.split("/")
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", int(port)))
if kind == "tcp":
    sock.listen()
print("bound", flush=True)
time.sleep(60)
"""


def test_strays_are_the_ports_in_our_range_a_peer_bound_but_was_not_given() -> None:
    """What guards the peers' configuration: a process binds the port it was given, its
    child one over UDP and its grandchild one over TCP that it was not given (all three
    reserved by this test, so that no other test can pick them meanwhile), and a fourth
    the kernel picks; the two not given are the strays, the kernel's port is not."""
    given, udp, tcp = (ports.free_port(both=True) for _ in range(3))
    spec = [f"udp/{given}", f"udp/{udp}", f"tcp/{tcp}", "udp/0"]
    with subprocess.Popen(
        [sys.executable, "-c", BINDER, *spec],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "BINDER": BINDER},
        start_new_session=True,
    ) as child:
        try:
            assert child.stdout is not None
            assert [child.stdout.readline() for _ in spec] == ["bound\n"] * len(spec)
            assert ports.strays(child.pid, given={given}) == sorted([udp, tcp])
            assert ports.strays(child.pid) == []  # all three are this process's own
        finally:
            os.killpg(child.pid, signal.SIGKILL)
