"""Findings 8 and 13 of issue 6: the SIP agent under a plain registrar and a hostile peer."""

import json
import re
import socket
import threading
import time
from types import TracebackType

from hostile_net import pump_for
from hostile_service import Service, Watch
from hostile_table import Options, Outcome, Row, api_row, rss_row

REGISTER_AIM = 3  # the REGISTER, and room for one that replaces a stale contact
UNSPECIFIED = {"0.0.0.0", "::", "[::]"}  # noqa: S104 (names compared with, never bound)
COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact"}
CONTACT_HOST = re.compile(r"sip:(?:[^@;>]*@)?(\[[^\]]*\]|[^:;>]+)")


class Registrar:
    """A registrar that adds neither `rport` nor `received` (RFC 3581 is optional): every
    REGISTER gets 200 with its Via unchanged and its contacts echoed with `;expires=60`.
    It counts REGISTERs for `window` seconds after the first, then stops answering."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.count = 0
        self.first: float | None = None
        self.contact_hosts: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "Registrar":
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def wait(self, timeout: float) -> None:
        """Until the window has passed (or no REGISTER came within `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stop.is_set():
            if self.first is not None and time.monotonic() > self.first + self.window:
                return
            time.sleep(0.05)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            if not data.startswith(b"REGISTER "):
                continue
            now = time.monotonic()
            self.first = self.first or now
            if now > self.first + self.window:
                continue  # the window is over: silence, so the agent stops too
            self.count += 1
            self.sock.sendto(self._answer(data), peer)

    def _answer(self, request: bytes) -> bytes:
        headers = _headers(request.decode("utf-8", "replace"))
        contacts = [] if _first(headers, "expires") == "0" else headers.get("contact", [])
        kept = [c for c in contacts if "expires=0" not in c.replace(" ", "")]
        for contact in contacts[:4]:  # removed ones too: no contact may name 0.0.0.0
            match = CONTACT_HOST.search(contact)
            if len(self.contact_hosts) < 8:
                self.contact_hosts.add(match[1] if match else contact[:40])
        to = _first(headers, "to")
        lines = [
            "SIP/2.0 200 OK",
            *(f"Via: {via}" for via in headers.get("via", [])),
            f"From: {_first(headers, 'from')}",
            f"To: {to}" if ";tag=" in to else f"To: {to};tag=bench",
            f"Call-ID: {_first(headers, 'call-id')}",
            f"CSeq: {_first(headers, 'cseq')}",
            *(f"Contact: {contact};expires=60" for contact in kept),
            "Content-Length: 0",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _headers(text: str) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for line in text.split("\r\n\r\n", 1)[0].split("\r\n")[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers.setdefault(COMPACT.get(key, key), []).append(value.strip())
    return headers


def _first(headers: dict[str, list[str]], name: str) -> str:
    return headers.get(name, [""])[0]


# --- 8: a REGISTER flood with --sip-host 0.0.0.0 -----------------------------------------


def register_flood(options: Options) -> Outcome:
    window = options.seconds(5)
    with (
        Service(options.nofile, sip_host="0.0.0.0") as service,  # noqa: S104 (the finding)
        Registrar(window) as registrar,
    ):
        token = service.login()
        body = {
            "enable": True,
            "proxy": f"127.0.0.1:{registrar.port}",
            "realm": "127.0.0.1",
            "user": "101",
            "password": "secret1",
            "transport": "udp",
            "timeout": 120,
            "registration_interval": 60,
            "stun": {"ip": "", "port": 0},
        }
        with Watch(service, options.rss_ceiling) as watch:
            status, answer, _ = service.call(
                "POST", "/api/v1/device/sip/settings", token, json.dumps(body).encode()
            )
            if status != 200:
                raise RuntimeError(f"settings answered {status}: {answer}")
            registrar.wait(window + 10)
    hosts = ", ".join(sorted(registrar.contact_hosts)) or "none seen"
    did = (
        f"`--sip-host 0.0.0.0`; settings posted for a UDP registrar on 127.0.0.1 that adds"
        f" neither rport nor received and grants 60 s; REGISTERs counted for {window:.1f} s"
        f" after the first"
    )
    return Outcome(
        did,
        (
            Row(
                "REGISTERs",
                "12,940 in 3.3 s",
                f"{registrar.count} in {window:.1f} s",
                f"≤ {REGISTER_AIM}",
                0 < registrar.count <= REGISTER_AIM,
            ),
            Row(
                "contact hosts",
                "0.0.0.0",  # noqa: S104 (the issue's figure)
                hosts,
                "the flow's address",
                bool(registrar.contact_hosts) and not registrar.contact_hosts & UNSPECIFIED,
            ),
            api_row(watch.latency, "-"),
        ),
    )


# --- 13: TCP without back-pressure on the SIP port ---------------------------------------


def _options_batch(port: int, count: int) -> bytes:
    return b"".join(
        (
            f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-bench-{n}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:bench@127.0.0.1>;tag=bench{n}\r\n"
            f"To: <sip:127.0.0.1:{port}>\r\n"
            f"Call-ID: bench-{n}@127.0.0.1\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        for n in range(count)
    )


def sip_pipelined(options: Options) -> Outcome:
    seconds = options.seconds(15)
    with Service(options.nofile) as service, Watch(service, options.rss_ceiling) as watch:
        batch = _options_batch(service.sip_port, 500)
        pumped = pump_for(service.sip_port, 1, batch, seconds, watch.over_ceiling)
    dropped = f"after {pumped.first_drop:.1f} s" if pumped.first_drop is not None else "no"
    did = (
        f"a TCP connection to the SIP port, OPTIONS (Content-Length: 0) x500 per write,"
        f" no reads, {seconds:.0f} s (connecting again when dropped):"
        f" {pumped.sent / 2**20:.0f} MB written, {pumped.dropped} of {pumped.opened}"
        f" connections dropped by the service"
    )
    return Outcome(
        did,
        (
            rss_row(watch, "36 -> 232 MB in 15 s"),
            api_row(watch.latency, "p50 103 ms (from 1 ms)"),
            Row(
                "flow dropped by the service", "no", dropped, "yes", pumped.first_drop is not None
            ),
        ),
    )
