"""A scripted caller for the media tests: SIP over UDP through Kamailio, RTP and RTCP by hand.

SIPp cannot keep an old stream going while a re-INVITE moves it, send RTCP without RTP,
or spell `TELEPHONE-EVENT` in capitals; this can, in a few lines each. It is test
equipment (one call, one dialog, no retransmissions: loopback does not lose datagrams),
not a model for the agent.
"""

from __future__ import annotations

import re
import secrets
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from intercom_sip.media import stamps

from . import sipclient

HOST = "127.0.0.1"
PCMU_SILENCE = b"\xff"


def bind_pair(host: str = HOST) -> tuple[socket.socket, socket.socket]:
    """An even RTP port and its RTCP port above, both bound (kernel-chosen)."""
    while True:
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind((host, 0))
        port = rtp.getsockname()[1]
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if port % 2:
                raise OSError("odd")
            rtcp.bind((host, port + 1))
        except OSError:
            rtp.close()
            rtcp.close()
            continue
        for sock in (rtp, rtcp):
            sock.settimeout(0.05)
            stamps.ask(sock)  # when each datagram came, not when our thread read it
        return rtp, rtcp


@dataclass
class Inbox:
    """What one socket received, with when (time.monotonic: the kernel's arrival stamp,
    so that a reader a loaded machine holds back does not move it) and from where."""

    sock: socket.socket
    datagrams: list[tuple[float, bytes, tuple[str, int]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def since(self, moment: float) -> list[bytes]:
        with self._lock:
            return [data for at, data, _ in self.datagrams if at >= moment]

    def count(self) -> int:
        with self._lock:
            return len(self.datagrams)

    def add(self, at: float, data: bytes, source: tuple[str, int]) -> None:
        with self._lock:
            self.datagrams.append((at, data, source))


class Stream:
    """RTP (and, or only, RTCP) from one address pair to a target, on a thread, until told."""

    def __init__(
        self, pair: tuple[socket.socket, socket.socket], ptime: int = 20, ssrc: int | None = None
    ) -> None:
        self.rtp, self.rtcp = Inbox(pair[0]), Inbox(pair[1])
        self.ptime = ptime
        self.ssrc = ssrc if ssrc is not None else secrets.randbits(32)
        self.target: tuple[str, int] | None = None
        self.send_rtp = True
        self.rtcp_every: float | None = None  # seconds between our RRs; None: none
        self.digits: list[tuple[int, bytes]] = []  # (payload type, event payload) to send
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.sequence, self.timestamp = 1000, 5000

    @property
    def port(self) -> int:
        port: int = self.rtp.sock.getsockname()[1]
        return port

    def start(self, target: tuple[str, int]) -> None:
        self.target = target
        for inbox in (self.rtp, self.rtcp):
            thread = threading.Thread(target=self._receive, args=(inbox,), daemon=True)
            thread.start()
            self._threads.append(thread)
        sender = threading.Thread(target=self._send, daemon=True)
        sender.start()
        self._threads.append(sender)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        self.rtp.sock.close()
        self.rtcp.sock.close()

    def _receive(self, inbox: Inbox) -> None:
        while not self._stop.is_set():
            try:
                data, ancillary, _, source = inbox.sock.recvmsg(2048, stamps.SPACE)
            except TimeoutError:
                continue
            except OSError:
                return
            inbox.add(stamps.arrival(ancillary, time.monotonic(), time.time()), data, source)

    def _send(self) -> None:
        assert self.target is not None
        start, slot, last_rtcp = time.monotonic(), 0, 0.0
        rtcp_target = (self.target[0], self.target[1] + 1)
        while not self._stop.wait(max(0.0, start + slot * self.ptime / 1000 - time.monotonic())):
            slot += 1
            if self.send_rtp:
                self._one_packet()
            now = time.monotonic()
            if self.rtcp_every is not None and now - last_rtcp >= self.rtcp_every:
                last_rtcp = now
                report = struct.pack("!BBHI", 0x80, 201, 1, self.ssrc)
                self.rtcp.sock.sendto(report, rtcp_target)

    def _one_packet(self) -> None:
        assert self.target is not None
        if self.digits:
            payload_type, payload = self.digits.pop(0)
        else:
            payload_type, payload = 0, PCMU_SILENCE * (8 * self.ptime)
        header = struct.pack(
            "!BBHII", 0x80, payload_type, self.sequence, self.timestamp & 0xFFFFFFFF, self.ssrc
        )
        self.rtp.sock.sendto(header + payload, self.target)
        self.sequence = (self.sequence + 1) & 0xFFFF
        if payload_type == 0:
            self.timestamp += 8 * self.ptime

    def queue_digit(self, event_type: int, code: int) -> None:
        """An RFC 4733 event: 4 packets growing, 3 ends, one timestamp."""
        growing = [struct.pack("!BBH", code, 10, 160 * n) for n in range(1, 5)]
        ends = [struct.pack("!BBH", code, 0x80 | 10, 800)] * 3
        self.digits += [(event_type, payload) for payload in growing + ends]


def offer(port: int, version: int, media_lines: str) -> str:
    return (
        f"v=0\r\no=uac 1 {version} IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 101\r\n{media_lines}"
    )


PLAIN_MEDIA = "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"


class Caller:
    """One call to `user` through the proxy at `server`, over UDP."""

    def __init__(self, server: tuple[str, int], user: str) -> None:
        self.conn = sipclient.Connection("udp", server, timeout=10.0)
        self.server, self.user = server, user
        self.call_id, self.tag = secrets.token_hex(8), secrets.token_hex(4)
        self.cseq = 0
        self.to = ""
        self.remote_target = ""
        self.routes: list[str] = []
        self.answer = b""

    def close(self) -> None:
        self.conn.close()

    def invite(self, sdp: str) -> sipclient.Message:
        """INVITE, then the final response (and ACK for a 2xx)."""
        uri = f"sip:{self.user}@{self.server[0]}:{self.server[1]}"
        final = self._request("INVITE", uri, sdp, initial=True)
        if final.status == 200:
            self.to = final.header("To") or ""
            self.remote_target = _uri(final.header("Contact") or "")
            self.routes = final.all("Record-Route")[::-1]
            self.answer = final.body
            self._ack()
        return final

    def reinvite(self, sdp: str) -> sipclient.Message:
        final = self._request("INVITE", self.remote_target, sdp)
        if final.status == 200:
            self.answer = final.body
            self._ack()
        return final

    def bye(self) -> sipclient.Message:
        return self._request("BYE", self.remote_target, "")

    def wait_bye(self, timeout: float) -> sipclient.Message | None:
        """A BYE from the monitor within `timeout`, answered 200; None if none came."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                message = self.conn.receive()
            except TimeoutError:
                return None
            if message.method == "BYE" and message.status == 0:
                self.conn.send(sipclient.reply(message, 200, "OK"))
                return message
        return None

    def _request(
        self, method: str, uri: str, sdp: str, initial: bool = False
    ) -> sipclient.Message:
        self.cseq += 1
        self.conn.send(self._text(method, uri, sdp, self.cseq, initial))
        while True:
            message = self.conn.receive()
            if message.status >= 200 and message.header("CSeq") == f"{self.cseq} {method}":
                return message
            if message.status == 0 and message.method == "BYE":
                self.conn.send(sipclient.reply(message, 200, "OK"))

    def _ack(self) -> None:
        self.conn.send(self._text("ACK", self.remote_target, "", self.cseq, False))

    def _text(self, method: str, uri: str, sdp: str, cseq: int, initial: bool) -> str:
        host, port = self.conn.local
        to = f"<sip:{self.user}@{self.server[0]}>" if initial else self.to
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{secrets.token_hex(6)};rport",
            "Max-Forwards: 70",
            f"From: <sip:uac@{host}:{port}>;tag={self.tag}",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:uac@{host}:{port};transport=udp>",
            *(f"Route: {route}" for route in ([] if initial else self.routes)),
        ]
        if sdp:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(sdp.encode())}")
        return "\r\n".join(lines) + "\r\n\r\n" + sdp


def answered_port(body: bytes) -> tuple[str, int]:
    """The connection address and audio port of an SDP answer."""
    text = body.decode()
    address = re.search(r"c=IN IP4 (\S+)", text)
    port = re.search(r"m=audio ([0-9]+) ", text)
    assert address and port, text
    return address[1], int(port[1])


def _uri(contact: str) -> str:
    match = re.search(r"<([^>]+)>", contact)
    return match[1] if match else contact.strip()
