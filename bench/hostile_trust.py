"""Issue 11's attacker on the same network (CONTRACT §6.9): a forged INVITE, OPTIONS and
INVITE floods beside the registrar's calls, and the SIP TCP cap held with keep-alives.

The registrar here is a small one of the bench's own on 127.0.0.1 (UDP): it grants every
REGISTER and, when asked, calls the monitor as a real registrar does, at the Contact it
registered, and times INVITE -> 180 before it CANCELs. The stranger is 127.0.0.2; the
forger a raw socket (root) that writes the registrar's own address and port.
"""

import contextlib
import json
import re
import socket
import statistics
import struct
import threading
import time
from collections.abc import Callable
from types import TracebackType

from hostile_service import Service, Watch
from hostile_table import Options, Outcome, Row, api_row

STRANGER = "127.0.0.2"
CALLS = 20  # the registrar's calls, quiet and during each flood
AUTO_ANSWER = "/api/v1/device/call/auto_answer"
CONTACT = re.compile(r"^(?:Contact|m):\s*<?([^>;\r\n]+)", re.M | re.I)
TO_TAG = re.compile(r"^(?:To|t):[^\r\n]*;tag=([^;\r\n]+)", re.M | re.I)


def _sdp(host: str, port: int) -> str:
    return (
        f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
    )


def invite(uri: str, via: tuple[str, int], n: str, rtp: int = 9, proto: str = "UDP") -> str:
    sdp = _sdp(via[0], rtp)
    return (
        f"INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/{proto} {via[0]}:{via[1]};branch=z9hG4bK{n}\r\n"
        f"From: <sip:door@{via[0]}>;tag=f{n}\r\nTo: <{uri}>\r\nCall-ID: {n}@{via[0]}\r\n"
        f"CSeq: 1 INVITE\r\nContact: <sip:door@{via[0]}:{via[1]}>\r\nMax-Forwards: 70\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}"
    )


def _in_transaction(method: str, uri: str, via: tuple[str, int], n: str, to: str) -> str:
    return (
        f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {via[0]}:{via[1]};branch=z9hG4bK{n}\r\n"
        f"From: <sip:door@{via[0]}>;tag=f{n}\r\nTo: {to}\r\nCall-ID: {n}@{via[0]}\r\n"
        f"CSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )


def options(uri: str, via: tuple[str, int], n: str) -> str:
    return (
        f"OPTIONS {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {via[0]}:{via[1]};branch=z9hG4bK{n}\r\n"
        f"From: <sip:scan@{via[0]}>;tag=o{n}\r\nTo: <{uri}>\r\nCall-ID: {n}@{via[0]}\r\n"
        "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )


class CallingRegistrar:
    """Grants REGISTERs (counted) and calls the registered Contact on demand."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.address: tuple[str, int] = self.sock.getsockname()
        self.registers = 0
        self.contact: str | None = None
        self.monitor: tuple[str, int] | None = None
        self._answers: dict[str, list[tuple[float, str]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "CallingRegistrar":
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def wait_registered(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while self.contact is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.contact is None:
            raise RuntimeError("the monitor never registered")

    def ring(self, n: str, timeout: float = 5.0) -> float | None:
        """One call to the registered Contact: seconds from INVITE to 180 (None: no 180,
        or a final answer instead), then CANCEL and the ACK of the 487."""
        assert self.contact is not None and self.monitor is not None
        with self._lock:
            self._answers[n] = []
        sent = time.monotonic()
        self.sock.sendto(invite(self.contact, self.address, n).encode(), self.monitor)
        ringing = self._wait(n, lambda line: line[8:11] == "180" or line[8] != "1", timeout)
        if ringing is None or not ringing[1].startswith("SIP/2.0 180 "):
            return None  # no answer, or a final one (503 when the table was full)
        cancel = _in_transaction("CANCEL", self.contact, self.address, n, f"<{self.contact}>")
        self.sock.sendto(cancel.encode(), self.monitor)
        final = self._wait(n, lambda line: line.startswith("SIP/2.0 487 "), timeout)
        if final is not None:
            tag = TO_TAG.search(final[1])
            to = f"<{self.contact}>;tag={tag[1] if tag else ''}"
            ack = _in_transaction("ACK", self.contact, self.address, n, to)
            self.sock.sendto(ack.encode(), self.monitor)
        return ringing[0] - sent

    def _wait(
        self, n: str, wanted: Callable[[str], bool], timeout: float
    ) -> tuple[float, str] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for at, text in self._answers.get(n, []):
                    if wanted(text.split("\r\n")[0]):
                        return at, text
            time.sleep(0.002)
        return None

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            text = data.decode("utf-8", "replace")
            if text.startswith("REGISTER "):
                self._grant(text, peer)
            elif text.startswith("SIP/2.0 "):
                call = re.search(r"^(?:Call-ID|i):\s*([^@\r\n]+)@", text, re.M | re.I)
                with self._lock:
                    if call and call[1] in self._answers:
                        self._answers[call[1]].append((time.monotonic(), text))

    def _grant(self, text: str, peer: tuple[str, int]) -> None:
        self.registers += 1
        head = text.split("\r\n\r\n", 1)[0].split("\r\n")
        keep = ("via:", "from:", "to:", "call-id:", "cseq:", "v:", "f:", "t:", "i:")
        copied = [line for line in head[1:] if line.lower().startswith(keep)]
        found = CONTACT.search(text)
        if found and "expires=0" not in text.lower().replace(" ", ""):
            self.contact, self.monitor = found[1].strip(), peer
        contacts = [f"Contact: <{self.contact}>;expires=60"] if self.contact else []
        lines = ["SIP/2.0 200 OK", *copied, *contacts, "Content-Length: 0"]
        fixed = [f"{line};tag=bench" if line.lower().startswith("to:") else line for line in lines]
        self.sock.sendto(("\r\n".join(fixed) + "\r\n\r\n").encode(), peer)


def _settings(registrar: CallingRegistrar) -> dict[str, object]:
    return {
        "enable": True,
        "proxy": f"127.0.0.1:{registrar.address[1]}",
        "realm": "127.0.0.1",
        "user": "101",
        "password": "secret1",
        "transport": "udp",
        "timeout": 120,
        "registration_interval": 60,
        "stun": {"ip": "", "port": 0},
    }


class _Monitor:
    """The service registered at the bench's registrar."""

    def __init__(self, options: Options) -> None:
        self.service = Service(options.nofile)
        self.registrar = CallingRegistrar()
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "_Monitor":
        with self._stack as stack:  # whatever fails on the way is let go
            stack.enter_context(self.service)
            stack.enter_context(self.registrar)
            self.token = self.service.login()
            body = json.dumps(_settings(self.registrar)).encode()
            status, answer, _ = self.service.call(
                "POST", "/api/v1/device/sip/settings", self.token, body
            )
            if status != 200:
                raise RuntimeError(f"settings answered {status}: {answer}")
            self.registrar.wait_registered()
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def sip(self) -> tuple[str, int]:
        return ("127.0.0.1", self.service.sip_port)

    def history(self) -> list[dict[str, object]]:
        _, answer, _ = self.service.call("GET", "/api/v1/call/history?limit=1000", self.token)
        calls: list[dict[str, object]] = answer["calls"]
        return calls

    def rings(self, tag: str) -> list[float | None]:
        return [self.registrar.ring(f"{tag}{n}-{time.monotonic_ns()}") for n in range(CALLS)]


def _p50(latencies: list[float | None]) -> str:
    rang = [at for at in latencies if at is not None]
    if not rang:
        return f"0 of {len(latencies)} rang"
    return f"{len(rang)} of {len(latencies)} rang, p50 {statistics.median(rang) * 1000:.1f} ms"


def _within_twice(flood: list[float | None], quiet: list[float | None]) -> bool:
    rang, calm = [a for a in flood if a is not None], [a for a in quiet if a is not None]
    if len(rang) != len(flood) or not calm:
        return False
    return statistics.median(rang) <= 2 * max(statistics.median(calm), 0.001)


def _most_in_a_second(times: list[float], slack: float = 0.05) -> int:
    """The most events within any one second, less `slack`: what the network and the
    scheduler add between the monitor's sending and our hearing."""
    times = sorted(times)
    return max((sum(1 for t in times if s <= t < s + 1.0 - slack) for s in times), default=0)


REFUSED = re.compile(r"^(\S+ \S+) WARNING intercom_sip\.sip\.port: .* refused 403", re.M)


def _refusal_lines(service: Service) -> tuple[int, int]:
    """How many refusals of strangers the service logged (of its log's last 64 KiB), and
    the most in any one second."""
    stamps = REFUSED.findall(service.log_tail_all())
    times = [
        time.mktime(time.strptime(s[:19], "%Y-%m-%d %H:%M:%S")) + int(s[20:]) / 1000
        for s in stamps
    ]
    # The log's clock is in ms, and a line is stamped when written, a little after the
    # instant the service counted it (more on a loaded machine): the same slack.
    return len(times), _most_in_a_second(times)


# --- the forged INVITE -----------------------------------------------------------------------


def _forged(source: tuple[str, int], target: tuple[str, int], payload: bytes) -> None:
    length = 8 + len(payload)
    udp = struct.pack("!HHHH", source[1], target[1], length, 0) + payload
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + length,
        0,
        0,
        64,
        socket.IPPROTO_UDP,
        0,
        socket.inet_aton(source[0]),
        socket.inet_aton(target[0]),
    )
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
        raw.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        raw.sendto(header + udp, (target[0], 0))


def forged_invite(options: Options) -> Outcome:
    seconds = options.seconds(6)
    with _Monitor(options) as monitor:
        service = monitor.service
        body = b'{"is_enabled": true}'
        service.call("POST", AUTO_ANSWER, monitor.token, body)
        media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        media.bind(("127.0.0.1", 0))
        media.settimeout(0.2)
        uri = f"sip:101@127.0.0.1:{service.sip_port}"
        payload = invite(uri, ("127.0.0.1", 5099), "forged1", media.getsockname()[1]).encode()
        _forged(monitor.registrar.address, monitor.sip, payload)
        packets, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                media.recv(2048)
                packets += 1
            except TimeoutError:
                continue
        media.close()
        rows = len(monitor.history())
    did = (
        f"one UDP INVITE from a raw socket, its source the registrar's address and port,"
        f" to sip:101@<monitor> (no token), auto-answer on; RTP counted {seconds:.0f} s"
    )
    return Outcome(
        did,
        (
            Row(
                "RTP at the forger's SDP address",
                "234 in 6 s (issue: 250)",
                str(packets),
                "0",
                packets == 0,
            ),
            Row("call-log rows", "0 (still in the call; issue: 1)", str(rows), "0", rows == 0),
        ),
    )


# --- floods ----------------------------------------------------------------------------------


class _Flood:
    """The stranger: requests at `rate` a second; every answer timed, by Call-ID."""

    def __init__(self, target: tuple[str, int], kind: str, rate: int) -> None:
        self.target, self.kind, self.rate = target, kind, rate
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((STRANGER, 0))
        self.sock.settimeout(0.1)
        self.sent = 0
        self.answers: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=f, daemon=True) for f in (self._send, self._hear)]

    def __enter__(self) -> "_Flood":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self.sock.close()

    def stop_sending(self) -> float:
        self._stop.set()
        self._threads[0].join(5)
        return time.monotonic()

    def _send(self) -> None:
        here, uri = self.sock.getsockname(), f"sip:101@{self.target[0]}:{self.target[1]}"
        while not self._stop.is_set():
            n = f"s{self.sent}"
            text = invite(uri, here, n) if self.kind == "INVITE" else options(uri, here, n)
            self.sock.sendto(text.encode(), self.target)
            self.sent += 1
            time.sleep(1 / self.rate)

    def _hear(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                if self._stop.is_set() and not self._threads[0].is_alive():
                    return
                continue
            except OSError:
                return
            call = re.search(rb"^Call-ID:\s*([^@\r\n]+)", data, re.M | re.I)
            self.answers.append((time.monotonic(), call[1].decode() if call else "?"))

    def most_in_a_second(self) -> int:
        return _most_in_a_second([at for at, _ in self.answers])

    def resent(self) -> int:
        """Answers beyond the first to one request: retransmissions."""
        return len(self.answers) - len({call for _, call in self.answers})


def _flood(options: Options, kind: str, before: dict[str, str]) -> Outcome:
    seconds, rate = options.seconds(10), 200
    with _Monitor(options) as monitor:
        quiet = monitor.rings("quiet")
        registers = monitor.registrar.registers
        with (
            Watch(monitor.service, options.rss_ceiling) as watch,
            _Flood(monitor.sip, kind, rate) as flood,
        ):
            time.sleep(4.0)  # the flood under way: past 512 transactions (before: 32 s each)
            during = monitor.rings("flood")
            monitor.service.call("POST", "/api/v1/device/sip/reregister", monitor.token)
            deadline = time.monotonic() + seconds - 4.0
            while time.monotonic() < deadline:
                time.sleep(0.1)
            stopped = flood.stop_sending()
            time.sleep(4.0 if kind == "INVITE" else 1.0)  # T1 doublings: 0.5, 1, 2...
        reregistered = monitor.registrar.registers > registers
        strangers_rows = sum(STRANGER in str(call["remote"]) for call in monitor.history())
        lines, most_lines = _refusal_lines(monitor.service)
        late = sum(1 for at, _ in flood.answers if at > stopped + 0.5)
    did = (
        f"{flood.sent} {kind}s from {STRANGER} at {rate}/s for {seconds:.0f} s; meanwhile"
        f" {CALLS} calls from the registrar (INVITE to the registered Contact, 180, CANCEL)"
        f" and a re-REGISTER asked through the API; {CALLS} calls before, quiet"
    )
    rows = [
        Row(
            "registrar's calls: INVITE->180",
            before["rings"],
            _p50(during),
            f"all; ≤ 2x quiet ({_p50(quiet)})",
            _within_twice(during, quiet),
        ),
        Row(
            "re-REGISTER during the flood",
            before["register"],
            "sent" if reregistered else "not sent",
            "sent",
            reregistered,
        ),
        Row(
            "answers to the stranger",
            before["answers"],
            f"{len(flood.answers)}, at most {flood.most_in_a_second()} in a second",
            "≤ 10 a second",
            flood.most_in_a_second() <= 10,
        ),
        Row(
            "of them resent",
            before["resent"],
            f"{flood.resent()} ({late} after the flood)",
            "0",
            flood.resent() == 0,
        ),
        Row(
            "stranger's call-log rows",
            before["rows"],
            str(max(strangers_rows, 0)),
            "0",
            strangers_rows <= 0,
        ),
        Row(
            "refusals logged",
            before["lines"],
            f"{lines}, at most {most_lines} in a second",
            "≤ 5 a second",
            most_lines <= 5,
        ),
        api_row(watch.latency, "-"),
    ]
    return Outcome(did, tuple(rows))


# "Before" is main before issue 11, measured by this bench (and the issue's own figures).
def options_flood(options: Options) -> Outcome:
    before = {
        "rings": "0 of 20 rang (503)",
        "register": "not sent",
        "answers": "2,608, at most 236 in a second",
        "resent": "0",
        "rows": "0",
        "lines": "0 (not logged)",
    }
    return _flood(options, "OPTIONS", before)


def invite_flood(options: Options) -> Outcome:
    before = {
        "rings": "0 of 20 rang (503)",
        "register": "not sent",
        "answers": "3,599, at most 507 in a second",
        "resent": "1,947 (issue: 11 in 34 s each)",
        "rows": "0 (issue: 300 of 300 in a call)",
        "lines": "0 (issue: 40/s in a call)",
    }
    return _flood(options, "INVITE", before)


# --- the held TCP cap ------------------------------------------------------------------------


def held_tcp_cap(options: Options) -> Outcome:
    count = 64
    with _Monitor(options) as monitor:
        held: list[socket.socket] = []
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((STRANGER, 0))
            try:
                sock.connect(monitor.sip)
                held.append(sock)
            except OSError:
                sock.close()
        stop = threading.Event()

        def keep_alive() -> None:
            while not stop.wait(0.3):
                for sock in held:
                    with contextlib.suppress(OSError):
                        sock.send(b"\r\n\r\n")

        pinger = threading.Thread(target=keep_alive, daemon=True)
        pinger.start()
        time.sleep(1.5)  # past the cap's 1 s: the hold is in place
        taken = "reset"
        try:
            with socket.create_connection(monitor.sip, timeout=5) as proxy:
                here = proxy.getsockname()
                uri = f"sip:101@127.0.0.1:{monitor.service.sip_port}"
                proxy.sendall(invite(uri, here, "tcp1", proto="TCP").encode())
                heard = b""
                while b"SIP/2.0 180 " not in heard:
                    chunk = proxy.recv(65536)
                    if not chunk:
                        break
                    heard += chunk
                taken = "taken (180)" if b"SIP/2.0 180 " in heard else "closed"
        except OSError as exc:
            taken = f"refused ({exc.strerror or exc})"
        alive = 0
        for sock in held:
            try:
                sock.send(b"\r\n\r\n")
                alive += 1
            except OSError:
                pass
        stop.set()
        pinger.join(5)
        for sock in held:
            sock.close()
    did = (
        f"{count} TCP connections to the SIP port from {STRANGER}, each sending CRLF"
        " keep-alives every 0.3 s; after 1.5 s a new connection from the registrar's"
        " address (127.0.0.1) delivers an INVITE"
    )
    return Outcome(
        did,
        (
            Row("the proxy's new connection", "reset", taken, "taken", taken.startswith("taken")),
            Row("stranger's connections held", "64", str(alive), "≤ 8", alive <= 8),
        ),
    )
