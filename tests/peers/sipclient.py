"""A tiny SIP client for the peer tests: just enough to REGISTER, ping and answer.

It exists because SIPp 3.6.1 as packaged here has no TLS transport, and because some
checks (a Contact that differs from the source, a relayed INVITE) are shorter in Python
than in a SIPp scenario. It is test equipment, not a model for the agent.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import ssl
from dataclasses import dataclass
from types import TracebackType

_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]*))')


@dataclass(frozen=True)
class Message:
    """A parsed SIP request or response."""

    start_line: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        """Every value of header `name`, in order."""
        return [value for key, value in self.headers if key.lower() == name.lower()]

    @property
    def status(self) -> int:
        """The status code of a response; 0 for a request."""
        version, _, rest = self.start_line.partition(" ")
        return int(rest.split(" ", 1)[0]) if version == "SIP/2.0" else 0

    @property
    def method(self) -> str:
        """The method of a request, or of the request a response answers (from CSeq)."""
        return (self.header("CSeq") or " ").split()[-1]


def parse(data: bytes) -> Message:
    """Parse one complete SIP message (header folding is not supported)."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    headers = tuple(_split_header(line) for line in lines[1:] if line)
    return Message(start_line=lines[0], headers=headers, body=body)


def _split_header(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return name.strip(), value.strip()


class Connection:
    """One client socket to a SIP server over udp, tcp or tls.

    For tls, `context` defaults to the system CAs and `server_name` (what the certificate is
    checked against) to the server's host.
    """

    def __init__(
        self,
        transport: str,
        server: tuple[str, int],
        context: ssl.SSLContext | None = None,
        timeout: float = 3.0,
        server_name: str | None = None,
    ) -> None:
        self.transport = transport
        self.server = server
        self._buffer = b""
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        self._sock = socket.socket(socket.AF_INET, kind)
        try:
            self._sock.settimeout(timeout)
            self._sock.bind(("127.0.0.1", 0))
            self._sock.connect(server)
            if transport == "tls":
                context = context or ssl.create_default_context()
                name = server_name or server[0]
                self._sock = context.wrap_socket(self._sock, server_hostname=name)
        except BaseException:
            self._sock.close()  # a failed handshake must not leak the socket
            raise

    @property
    def local(self) -> tuple[str, int]:
        """Our address as the server sees it (no NAT on loopback)."""
        host, port = self._sock.getsockname()[:2]
        return host, port

    def send(self, text: str) -> None:
        """Send one message, given with bare newlines or CRLF."""
        data = text.replace("\r\n", "\n").replace("\n", "\r\n").encode()
        self._sock.sendall(data)

    def receive(self) -> Message:
        """The next message; on streams framed by Content-Length (RFC 3261 §18.3)."""
        if self.transport == "udp":
            return parse(self._sock.recv(65535))
        while b"\r\n\r\n" not in self._buffer.lstrip(b"\r\n"):
            self._read()
        self._buffer = self._buffer.lstrip(b"\r\n")  # keep-alive CRLFs between messages
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        length = int(parse(head + b"\r\n\r\n").header("Content-Length") or "0")
        while len(rest) < length:
            self._read()
            rest = self._buffer.partition(b"\r\n\r\n")[2]
        self._buffer = rest[length:]
        return parse(head + b"\r\n\r\n" + rest[:length])

    def receive_final(self) -> Message:
        """The next final (non-1xx) response."""
        while True:
            message = self.receive()
            if not 100 <= message.status < 200:
                return message

    def _read(self) -> None:
        chunk = self._sock.recv(65535)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self._buffer += chunk

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True)
class Dialog:
    """The numbers one REGISTER series keeps between requests (RFC 3261 §10.2)."""

    call_id: str
    from_tag: str

    @staticmethod
    def new() -> Dialog:
        """A fresh Call-ID and From tag."""
        return Dialog(call_id=secrets.token_hex(8), from_tag=secrets.token_hex(4))


def request(
    conn: Connection,
    method: str,
    *,
    uri: str,
    user: str,
    dialog: Dialog,
    cseq: int,
    extra: tuple[str, ...] = (),
) -> str:
    """The text of a request from `user` at the server's host to `uri`."""
    host, port = conn.local
    server = conn.server[0]
    lines = (
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/{conn.transport.upper()} {host}:{port};"
        f"branch=z9hG4bK{secrets.token_hex(6)};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{server}>;tag={dialog.from_tag}",
        f"To: <sip:{user}@{server}>" if method == "REGISTER" else f"To: <{uri}>",
        f"Call-ID: {dialog.call_id}",
        f"CSeq: {cseq} {method}",
        *extra,
        "Content-Length: 0",
    )
    return "\n".join(lines) + "\n\n"


def digest_authorization(
    challenge: str, method: str, uri: str, auth_user: str, password: str
) -> str:
    """An Authorization header answering a Digest MD5 `challenge` (RFC 7616, RFC 8760)."""
    params = {m[0]: m[1] or m[2] for m in _PARAM.findall(challenge)}
    realm, nonce = params["realm"], params["nonce"]
    ha1 = _md5(f"{auth_user}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    fields = f'username="{auth_user}", realm="{realm}", nonce="{nonce}", uri="{uri}"'
    if "auth" in params.get("qop", "").split(","):
        cnonce, nc = secrets.token_hex(8), "00000001"
        response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        fields += f', qop=auth, nc={nc}, cnonce="{cnonce}"'
    else:
        response = _md5(f"{ha1}:{nonce}:{ha2}")
    opaque = f', opaque="{params["opaque"]}"' if "opaque" in params else ""
    return f'Authorization: Digest {fields}, response="{response}", algorithm=MD5{opaque}'


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def register(
    conn: Connection,
    user: str,
    password: str,
    *,
    expires: int = 30,
    contact: str | None = None,
    auth_user: str | None = None,
) -> Message:
    """REGISTER, answer one 401 challenge, and return the final response."""
    host, port = conn.local
    contact = contact or f"<sip:{user}@{host}:{port};transport={conn.transport}>"
    uri = f"sip:{conn.server[0]}:{conn.server[1]}"
    dialog = Dialog.new()
    extra = (f"Contact: {contact}", f"Expires: {expires}", "User-Agent: peers-sipclient")
    conn.send(request(conn, "REGISTER", uri=uri, user=user, dialog=dialog, cseq=1, extra=extra))
    answer = conn.receive_final()
    challenge = answer.header("WWW-Authenticate")
    if answer.status != 401 or challenge is None:
        return answer
    auth = digest_authorization(challenge, "REGISTER", uri, auth_user or user, password)
    conn.send(
        request(conn, "REGISTER", uri=uri, user=user, dialog=dialog, cseq=2, extra=(*extra, auth))
    )
    return conn.receive_final()


def reply(req: Message, status: int, reason: str) -> str:
    """A response to `req` that copies the headers RFC 3261 §8.2.6.2 says to copy."""
    to = req.header("To") or ""
    to = to if ";tag=" in to else f"{to};tag={secrets.token_hex(4)}"
    vias = tuple(f"Via: {via}" for via in req.all("Via"))
    lines = (
        f"SIP/2.0 {status} {reason}",
        *vias,
        f"From: {req.header('From')}",
        f"To: {to}",
        f"Call-ID: {req.header('Call-ID')}",
        f"CSeq: {req.header('CSeq')}",
        "Content-Length: 0",
    )
    return "\n".join(lines) + "\n\n"


def answers_options(server: tuple[str, int], timeout: float = 0.2) -> bool:
    """Whether a SIP server answers an OPTIONS over UDP with 200 within `timeout`."""
    try:
        with Connection("udp", server, timeout=timeout) as conn:
            uri = f"sip:{server[0]}:{server[1]}"
            conn.send(request(conn, "OPTIONS", uri=uri, user="probe", dialog=Dialog.new(), cseq=1))
            return conn.receive().status == 200
    except OSError:  # timeout, or ICMP port unreachable while it is still starting
        return False
