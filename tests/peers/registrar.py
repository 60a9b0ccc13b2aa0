"""A registrar of ours for the peer tests: small, configurable, and unlike Kamailio.

In the manner of baresip's in-process fake registrar: it listens on UDP and TCP on one
free port of 127.0.0.1, checks digest responses for real (MD5, SHA-256, their -sess
forms, qop=auth or none) and can be set to behave as registrars in the field do where
Kamailio's defaults do not: a new nonce with every challenge, one-time nonces, several
challenges (SHA-512-256 first, or another scheme first), stale never or always, 407
instead of 401, no rport/received in its Via, 423 with Min-Expires, a granted expiry of
its choosing, silence, 403, or 503 with a Retry-After.

    with Registrar(Behaviour(nonces="per-challenge")) as registrar:
        ... point the agent at registrar.proxy ...
        registrar.registers()          # every REGISTER received, with the code answered
        registrar.bindings("101")      # the contacts it holds for an address of record
        registrar.behaviour = replace(registrar.behaviour, mode="forbid")  # at run time

The event loop runs in a thread of its own; every method here may be called from the
test's thread. It is test equipment: what it records is bounded, its replies are built
with the package's message builder, and its digest check is its own code.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Literal, cast

from intercom_sip.sip.framer import Framer, Ping
from intercom_sip.sip.message import (
    Headers,
    ParseError,
    Request,
    Response,
    parse,
    parse_name_addr,
    parse_via,
    response_bytes,
    response_to,
)

from .ports import HOST, free_port

Nonces = Literal["fixed", "per-challenge", "one-time"]
Stale = Literal["honest", "never", "always"]
Mode = Literal["serve", "silent", "forbid", "busy"]
Address = tuple[str, int]

MAX_RECORDED: Final = 10_000
MAX_NONCES: Final = 1_000
DEFAULT_EXPIRES: Final = 3600
_HASHES: Final[dict[str, Callable[[bytes], str]]] = {
    "MD5": lambda data: hashlib.md5(data).hexdigest(),
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
}
_AUTH_PARAM: Final = re.compile(r'([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class Behaviour:
    """How the registrar behaves; replace the whole value to change it at run time.

    challenges: one WWW-Authenticate header each, in this order: "Digest <algorithm>"
        (the registrar checks MD5 and SHA-256; others are offered but never accepted)
        or any other scheme, sent as `<scheme> realm="..."`.
    one_header: all challenges joined in one header, with commas (HTTP style).
    nonces: "fixed" one nonce for ever (Kamailio within a second); "per-challenge" a new
        one with every challenge, each good for ever; "one-time" a new one with every
        challenge, each good for one request (Kamailio's one_time_nonce).
    stale: "honest" says stale=true when a correct response used a nonce no longer good;
        "never"; "always" on every challenge.
    """

    users: dict[str, str] = field(default_factory=lambda: {"101": "secret"})
    realm: str = "fake.test"
    challenges: tuple[str, ...] = ("Digest MD5",)
    one_header: bool = False
    qop: str | None = "auth"
    nonces: Nonces = "fixed"
    stale: Stale = "honest"
    proxy_auth: bool = False  # 407 and Proxy-Authenticate instead of 401
    rport: bool = True  # RFC 3581: received and rport in the Via of answers
    min_expires: int | None = None  # 423 below this
    grant: int | None = None  # the expiry granted, whatever was asked
    mode: Mode = "serve"  # "silent": answer nothing; "forbid": 403 to every REGISTER;
    # "busy": 503 to every REGISTER, with `Retry-After: retry_after` when it is set
    retry_after: int | None = None


@dataclass(frozen=True)
class Received:
    """One request as it arrived, and the code it was answered with (None: no answer)."""

    transport: str
    source: Address
    request: Request
    code: int | None
    at: float  # time.monotonic()

    @property
    def authorization(self) -> dict[str, str]:
        """The digest parameters of its (Proxy-)Authorization header, if any."""
        headers = self.request.headers
        value = headers.get("Authorization") or headers.get("Proxy-Authorization") or ""
        return _auth_params(value)


class Registrar:
    """UDP and TCP on 127.0.0.1:`port`; see the module docstring."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.port = 0
        self.total = 0  # requests received, all of them (the records keep the last ones)
        self._lock = threading.Lock()
        self._received: collections.deque[Received] = collections.deque(maxlen=MAX_RECORDED)
        self._bindings: dict[str, dict[str, float]] = {}  # aor user -> contact -> until
        self._nonces: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._fixed = self._new_nonce()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # --- the test's side ---------------------------------------------------------------

    @property
    def proxy(self) -> str:
        """The `proxy` setting that points an agent here."""
        return f"{HOST}:{self.port}"

    def start(self) -> Registrar:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shut(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> Registrar:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def received(self) -> list[Received]:
        """Every request, oldest first (the last MAX_RECORDED)."""
        with self._lock:
            return list(self._received)

    def registers(self) -> list[Received]:
        return [r for r in self.received() if r.request.method == "REGISTER"]

    def codes(self) -> list[int | None]:
        """The code each REGISTER was answered with, in order, retransmissions aside."""
        return [r.code for r in self.attempts()]

    def attempts(self) -> list[Received]:
        """The REGISTERs less their retransmissions (one per Call-ID and CSeq, the first):
        on a loaded machine a UDP REGISTER may be sent again before our answer arrives."""
        seen: dict[tuple[str | None, str | None], Received] = {}
        for r in self.registers():
            headers = r.request.headers
            seen.setdefault((headers.get("Call-ID"), headers.get("CSeq")), r)
        return list(seen.values())

    def bindings(self, user: str) -> list[str]:
        """The contact URIs held for `user`, unexpired."""
        now = time.monotonic()
        with self._lock:
            held = self._bindings.get(user, {})
            return [contact for contact, until in held.items() if until > now]

    # --- the core: a request in, a response (or none) out ---------------------------------

    def handle(self, request: Request, transport: str, source: Address) -> Response | None:
        """Answer one request (pure but for the registrar's own tables); also recorded."""
        behaviour = self.behaviour
        with self._lock:
            answer = self._answer(request, behaviour, source)
            code = None if answer is None else answer.code
            self._received.append(Received(transport, source, request, code, time.monotonic()))
            self.total += 1
        return answer

    def _answer(self, request: Request, b: Behaviour, source: Address) -> Response | None:
        if request.method != "REGISTER":
            code, reason = (200, "OK") if request.method == "OPTIONS" else (405, "Not Allowed")
            return self._reply(request, code, reason, b, source)
        if b.mode == "silent":
            return None
        if b.mode == "forbid":
            return self._reply(request, 403, "Forbidden", b, source)
        if b.mode == "busy":
            extra = [] if b.retry_after is None else [("Retry-After", str(b.retry_after))]
            return self._reply(request, 503, "Service Unavailable", b, source, extra)
        return self._register(request, b, source)

    def _register(self, request: Request, b: Behaviour, source: Address) -> Response:
        verdict = self._check(request, b)
        if verdict != "ok":
            return self._challenge(request, b, source, stale=verdict == "stale")
        expires = _expires(request)
        if b.min_expires is not None and 0 < expires < b.min_expires:
            extra = [("Min-Expires", str(b.min_expires))]
            return self._reply(request, 423, "Interval Too Brief", b, source, extra)
        return self._save(request, b, source, expires)

    def _check(self, request: Request, b: Behaviour) -> Literal["ok", "stale", "no"]:
        header = "Proxy-Authorization" if b.proxy_auth else "Authorization"
        params = _auth_params(request.headers.get(header) or "")
        password = b.users.get(params.get("username", ""))
        offered = {c.split()[-1].upper() for c in b.challenges if c.lower().startswith("digest")}
        algorithm = params.get("algorithm", "MD5")
        if (
            password is None
            or params.get("realm") != b.realm
            or algorithm.upper()
            not in {
                *offered,
                *(a + "-SESS" for a in offered),
            }
        ):
            return "no"
        if params.get("response") != _expected(params, password, request.method):
            return "no"
        nonce = params.get("nonce", "")
        if nonce not in self._nonces:
            return "stale"  # a right answer to a nonce we no longer take
        if b.nonces == "one-time":
            del self._nonces[nonce]
        return "ok"

    def _challenge(self, request: Request, b: Behaviour, source: Address, stale: bool) -> Response:
        nonce = self._fixed if b.nonces == "fixed" else self._new_nonce()
        stale = {"honest": stale, "never": False, "always": True}[b.stale]
        values = [_challenge_text(c, b, nonce, stale) for c in b.challenges]
        if b.one_header:
            values = [", ".join(values)]
        code, reason, header = (
            (407, "Proxy Authentication Required", "Proxy-Authenticate")
            if b.proxy_auth
            else (401, "Unauthorized", "WWW-Authenticate")
        )
        return self._reply(request, code, reason, b, source, [(header, v) for v in values])

    def _save(self, request: Request, b: Behaviour, source: Address, expires: int) -> Response:
        aor = parse_name_addr(request.headers.get("To") or "")
        user = (aor.uri if aor else "").removeprefix("sip:").partition("@")[0]
        held = self._bindings.setdefault(user, {})
        now = time.monotonic()
        for value in request.headers.get_all("Contact"):
            contact = parse_name_addr(value)
            if value.strip() == "*" and expires == 0:
                held.clear()
            elif contact is not None:
                asked = _number(contact.params.get("expires"), expires)
                granted = 0 if asked == 0 else (b.grant if b.grant is not None else asked)
                if granted:
                    held[contact.uri] = now + granted
                else:
                    held.pop(contact.uri, None)
        contacts = [
            ("Contact", f"<{uri}>;expires={max(1, round(until - now))}")
            for uri, until in held.items()
            if until > now
        ]
        return self._reply(request, 200, "OK", b, source, contacts)

    def _reply(
        self,
        request: Request,
        code: int,
        reason: str,
        b: Behaviour,
        source: Address,
        extra: list[tuple[str, str]] | None = None,
    ) -> Response:
        answer = response_to(request, code, reason, "regtag", extra or [])
        if not b.rport:
            return answer
        fields = list(answer.headers)
        top = next(i for i, (name, _) in enumerate(fields) if name == "Via")
        fields[top] = ("Via", _with_received(fields[top][1], source))
        return Response(answer.code, answer.reason, Headers(tuple(fields)))

    def _new_nonce(self) -> str:
        nonce = secrets.token_hex(12)
        self._nonces[nonce] = None
        while len(self._nonces) > MAX_NONCES:
            self._nonces.popitem(last=False)
        return nonce

    # --- the asyncio shell -------------------------------------------------------------

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(20):  # the free port may be taken between the look and the bind
            port = free_port(both=True)
            try:
                self._tcp = await asyncio.start_server(self._serve_stream, HOST, port)
                self._udp, _ = await loop.create_datagram_endpoint(
                    lambda: _Datagrams(self), local_addr=(HOST, port)
                )
            except OSError:
                if self._tcp is not None:
                    self._tcp.close()
                    self._tcp = None
                continue
            self.port = port
            return
        raise RuntimeError("no free port for the registrar")

    async def _shut(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            for writer in list(self._writers):
                writer.close()
            await self._tcp.wait_closed()

    async def _serve_stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        source = (str(peer[0]), int(peer[1]))
        framer = Framer()
        self._writers.add(writer)
        try:
            while data := await reader.read(65536):
                framer.feed(data)
                while (event := framer.next_event()) is not None:
                    if isinstance(event, Ping):
                        writer.write(b"\r\n")
                    elif isinstance(event, bytes):
                        self._take(event, "tcp", source, writer.write)
                    elif isinstance(event, ParseError):
                        return  # a stream we cannot frame: closed
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _take(
        self, data: bytes, transport: str, source: Address, send: Callable[[bytes], object]
    ) -> None:
        message = parse(data, stream=transport == "tcp")
        if not isinstance(message, Request):
            return
        answer = self.handle(message, transport, source)
        if answer is not None:
            send(response_bytes(answer))


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, registrar: Registrar) -> None:
        self.registrar = registrar
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data.strip(b"\r\n") == b"":
            return  # a keep-alive
        source = (str(addr[0]), int(addr[1]))
        self.registrar._take(data, "udp", source, lambda out: self._send(out, data, source))

    def _send(self, out: bytes, request: bytes, source: Address) -> None:
        assert self.transport is not None
        if self.registrar.behaviour.rport:
            self.transport.sendto(out, source)
            return
        # Without RFC 3581, RFC 3261 §18.2.2: to the Via's sent-by, whatever the source.
        message = parse(request)
        via = parse_via(message.headers.get("Via") or "") if isinstance(message, Request) else None
        target = (via.host, via.port or 5060) if via is not None else source
        self.transport.sendto(out, target)


def _with_received(via: str, source: Address) -> str:
    """The top Via with `received` and a filled `rport` (RFC 3581 §4)."""
    parts = [p for p in via.split(";") if p.strip().split("=")[0] not in ("rport", "received")]
    return ";".join([*parts, f"received={source[0]}", f"rport={source[1]}"])


def _challenge_text(scheme: str, b: Behaviour, nonce: str, stale: bool) -> str:
    name, _, algorithm = scheme.partition(" ")
    if name.lower() != "digest":
        return f'{name} realm="{b.realm}"'
    parts = [f'realm="{b.realm}"', f'nonce="{nonce}"']
    if b.qop:
        parts.append(f'qop="{b.qop}"')
    if algorithm:
        parts.append(f"algorithm={algorithm}")
    if stale:
        parts.append("stale=true")
    return "Digest " + ", ".join(parts)


def _auth_params(value: str) -> dict[str, str]:
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return {}
    return {
        m[1].lower(): re.sub(r"\\(.)", r"\1", m[2]) if m[2] is not None else m[3]
        for m in _AUTH_PARAM.finditer(rest)
    }


def _expected(params: dict[str, str], password: str, method: str) -> str | None:
    """The response a client knowing `password` sends (RFC 7616 §3.4.1)."""
    algorithm = params.get("algorithm", "MD5").upper()
    h = _HASHES.get(algorithm.removesuffix("-SESS"))
    if h is None:
        return None
    nonce, cnonce = params.get("nonce", ""), params.get("cnonce", "")
    ha1 = h(f"{params.get('username')}:{params.get('realm')}:{password}".encode())
    if algorithm.endswith("-SESS"):
        ha1 = h(f"{ha1}:{nonce}:{cnonce}".encode())
    ha2 = h(f"{method}:{params.get('uri', '')}".encode())
    if params.get("qop") == "auth":
        return h(f"{ha1}:{nonce}:{params.get('nc', '')}:{cnonce}:auth:{ha2}".encode())
    return h(f"{ha1}:{nonce}:{ha2}".encode())


def _expires(request: Request) -> int:
    return _number(request.headers.get("Expires"), DEFAULT_EXPIRES)


def _number(text: str | None, default: int) -> int:
    return int(text) if text is not None and text.isascii() and text.isdigit() else default
