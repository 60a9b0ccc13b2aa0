"""Issue 11's RTP spray ("RTP Bleed", CVE-2017-14099's class) against a served instance.

The bench is the proxy (it answers the monitor's REGISTER and delivers one INVITE to the
registered Contact, from the proxy's own address) and the real peer (plain RTP from the
address its SDP names). An attacker on 127.0.0.2 sprays well-formed RTP, a run of one
SSRC per port at 50 packets a second each, at every even port of the monitor's RTP range
while the call rings (auto-answer after 1 s) and while it is up; the door code goes by
the API as RFC 4733 events. Counted: the monitor's RTP packets at the peer and at the
attacker, and the digits each of them could read.
"""

import json
import re
import secrets
import socket
import struct
import threading
import time
from types import TracebackType

from hostile_service import Service, Watch
from hostile_table import Options, Outcome, Row, api_row

HOST, ATTACKER = "127.0.0.1", "127.0.0.2"
RANGE = 40  # ports in --rtp-ports: 20 even ones, 1,000 sprayed packets a second
DOOR_CODE = "1234#"
EVENTS = "0123456789*#ABCD"


class Listener:
    """A UDP socket on a thread that counts the monitor's RTP and the digits it ends."""

    def __init__(self, host: str, sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if sock is None:
            self.sock.bind((host, 0))
        self.sock.settimeout(0.05)
        self.packets = 0
        self.ends: set[tuple[int, int]] = set()  # (timestamp, event) of each digit's end
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def digits(self) -> str:
        return "".join(EVENTS[event] for _, event in sorted(self.ends) if event < len(EVENTS))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(data) < 16 or data[1] & 0x7F not in (0, 101):
                continue
            self.packets += 1
            if data[1] & 0x7F == 101 and data[13] & 0x80:
                self.ends.add((struct.unpack_from("!I", data, 4)[0], data[12]))


class Sprayer(Listener):
    """The attacker: a perfect run at each even port every 20 ms; counts what it gets."""

    def __init__(self, ports: range) -> None:
        super().__init__(ATTACKER)
        self.ports = ports
        self.sent = 0
        self._sender = threading.Thread(target=self._spray, daemon=True)

    def start(self) -> None:
        super().start()
        self._sender.start()

    def stop(self) -> None:
        super().stop()
        self._sender.join(5)
        self.sock.close()

    def _spray(self) -> None:
        start, rounds = time.monotonic(), 0
        while not self._stop.wait(max(0.0, start + rounds * 0.02 - time.monotonic())):
            for port in self.ports:
                header = struct.pack("!BBHII", 0x80, 0, rounds & 0xFFFF, 160 * rounds, port)
                try:
                    self.sock.sendto(header + b"\xff" * 160, (HOST, port))
                    self.sent += 1
                except OSError:
                    continue
            rounds += 1


class Proxy:
    """The monitor's registrar and the caller's proxy in one UDP socket (no transactions:
    loopback loses nothing)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.contact = ""
        self.monitor: tuple[str, int] | None = None
        self.call_id, self.tag = secrets.token_hex(8), secrets.token_hex(4)
        self.to = ""

    def __enter__(self) -> "Proxy":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType
    ) -> None:
        self.sock.close()

    def registered(self, timeout: float) -> None:
        """Answer REGISTERs until one has a contact."""
        deadline = time.monotonic() + timeout
        while not self.contact and time.monotonic() < deadline:
            data, peer = self._receive()
            if data.startswith(b"REGISTER "):
                self.monitor = peer
                self.sock.sendto(_registered(data.decode("utf-8", "replace")), peer)
                match = re.search(r"^(?:Contact|m):.*?<([^>]+)>", data.decode(), re.M | re.I)
                self.contact = match[1] if match else ""
        if not self.contact:
            raise RuntimeError("the monitor never registered")

    def invite(self, rtp_port: int, timeout: float) -> int:
        """INVITE the registered contact; ACK its 200; the monitor's RTP port."""
        sdp = (
            f"v=0\r\no=peer 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
            f"m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
        )
        self._send("INVITE", 1, sdp)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data, _ = self._receive()
            text = data.decode("utf-8", "replace")
            if text.startswith("SIP/2.0 200") and "INVITE" in _header(text, "CSeq"):
                self.to = _header(text, "To")
                self._send("ACK", 1, "")
                port = re.search(r"m=audio ([0-9]+)", text)
                return int(port[1]) if port else 0
            if text.startswith("SIP/2.0 ") and not text.startswith("SIP/2.0 1"):
                raise RuntimeError(f"the INVITE was refused: {text.splitlines()[0]}")
            if text.startswith("REGISTER "):
                assert self.monitor is not None
                self.sock.sendto(_registered(text), self.monitor)
        raise RuntimeError("no 200 to the INVITE")

    def bye(self) -> None:
        self._send("BYE", 2, "")

    def _receive(self) -> tuple[bytes, tuple[str, int]]:
        try:
            data, peer = self.sock.recvfrom(65536)
        except TimeoutError:
            return b"", ("", 0)
        return data, (str(peer[0]), int(peer[1]))

    def _send(self, method: str, cseq: int, sdp: str) -> None:
        assert self.monitor is not None
        to = self.to or f"<{self.contact}>"
        lines = [
            f"{method} {self.contact} SIP/2.0",
            f"Via: SIP/2.0/UDP {HOST}:{self.port};branch=z9hG4bK{secrets.token_hex(6)}",
            "Max-Forwards: 70",
            f"From: <sip:panel@{HOST}>;tag={self.tag}",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:panel@{HOST}:{self.port}>",
            *(["Content-Type: application/sdp"] if sdp else []),
            f"Content-Length: {len(sdp)}",
        ]
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n" + sdp).encode(), self.monitor)


def _header(text: str, name: str) -> str:
    match = re.search(rf"^{name}:\s*(.*)$", text.split("\r\n\r\n", maxsplit=1)[0], re.M | re.I)
    return match[1].strip() if match else ""


def _registered(text: str) -> bytes:
    vias = re.findall(r"^(?:Via|v):\s*(.*)$", text.split("\r\n\r\n", maxsplit=1)[0], re.M | re.I)
    contact = _header(text, "Contact") or _header(text, "m")
    lines = [
        "SIP/2.0 200 OK",
        *(f"Via: {via.strip()}" for via in vias),
        f"From: {_header(text, 'From')}",
        f"To: {_header(text, 'To')};tag=bench",
        f"Call-ID: {_header(text, 'Call-ID')}",
        f"CSeq: {_header(text, 'CSeq')}",
        *([f"Contact: {contact};expires=3600"] if contact else []),
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _free_run(size: int) -> int:
    """The first (even) of `size` consecutive UDP ports free on every loopback address."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((HOST, 0))
            first = int(probe.getsockname()[1]) & ~1
        held = []
        try:
            for port in range(first, first + size):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(sock)
                sock.bind(("0.0.0.0", port))  # noqa: S104 (a probe, closed at once)
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        return first
    raise RuntimeError("no free run of ports")


def rtp_spray(options: Options) -> Outcome:
    """The call's RTP and door code, with an attacker spraying every even port."""
    first = _free_run(RANGE)
    extra = ("--rtp-ports", f"{first}-{first + RANGE - 1}", "--auto-answer-delay", "1")
    seconds = options.seconds(6)
    with Service(options.nofile, extra=extra) as service, Proxy() as proxy:
        token = service.login()
        peer, attacker = Listener(HOST), Sprayer(range(first, first + RANGE, 2))
        peer.start()
        attacker.start()
        try:
            with Watch(service, options.rss_ceiling) as watch:
                _configure(service, token, proxy.port)
                proxy.registered(20)
                target = proxy.invite(peer.port, 20)
                _talk(peer, (HOST, target), seconds, service, token)
                proxy.bye()
        finally:
            peer.stop()
            attacker.stop()
    did = (
        f"`--rtp-ports` {RANGE} ports; the attacker on {ATTACKER} sprayed {attacker.sent}"
        f" packets (a perfect run per even port, 50/s each) through 1 s of ringing and"
        f" {seconds:.0f} s of call; door code {DOOR_CODE} sent by the API"
    )
    total = peer.packets + attacker.packets
    return Outcome(
        did,
        (
            Row(
                "monitor's RTP at the real peer",
                "0 of 150",
                f"{peer.packets} of {total}",
                "all",
                total > 0 and attacker.packets == 0,
            ),
            Row(
                "at the attacker (door code)",
                f"150 ({DOOR_CODE})",
                f"{attacker.packets} ({attacker.digits or 'none'})",
                "0 (none)",
                attacker.packets == 0 and not attacker.digits,
            ),
            Row(
                "door code at the real peer",
                "none",
                peer.digits or "none",
                DOOR_CODE,
                peer.digits == DOOR_CODE,
            ),
            api_row(watch.latency, "-"),
        ),
    )


def _configure(service: Service, token: str, proxy_port: int) -> None:
    body = {
        "enable": True,
        "proxy": f"{HOST}:{proxy_port}",
        "realm": HOST,
        "user": "101",
        "password": "secret1",
        "transport": "udp",
        "timeout": 120,
        "registration_interval": 900,
        "stun": {"ip": "", "port": 0},
    }
    for path, payload in (
        ("/api/v1/device/sip/settings", body),
        ("/api/v1/device/call/auto_answer", {"is_enabled": True}),
    ):
        status, answer, _ = service.call("POST", path, token, json.dumps(payload).encode())
        if status != 200:
            raise RuntimeError(f"{path} answered {status}: {answer}")


def _talk(
    peer: Listener, target: tuple[str, int], seconds: float, service: Service, token: str
) -> None:
    """The real peer's RTP for `seconds`; the door code sent a second in."""
    start, slot, sent_code = time.monotonic(), 0, False
    ssrc = secrets.randbits(32)
    while (now := time.monotonic()) < start + seconds:
        header = struct.pack("!BBHII", 0x80, 0, slot & 0xFFFF, 160 * slot, ssrc)
        peer.sock.sendto(header + b"\xff" * 160, target)
        slot += 1
        if not sent_code and now > start + 1:
            body = json.dumps({"digits": DOOR_CODE}).encode()
            service.call("POST", "/api/v1/call/dtmf", token, body)
            sent_code = True
        time.sleep(max(0.0, start + slot * 0.02 - time.monotonic()))
