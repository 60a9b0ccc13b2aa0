"""REGISTER on the wire, pure: the request the machine's `Send` becomes, and the
`RegisterReply` a response becomes (RFC 3261 §10.2, RFC 3581, RFC 5626 instance id).
"""

import functools
from dataclasses import dataclass
from typing import Final

from intercom_sip.address import Address
from intercom_sip.sip import digest
from intercom_sip.sip.message import Headers, Request, Response, escape_user, parse_name_addr
from intercom_sip.sip.registration import Account, Challenge, RegisterReply, Send

_MAX_DIGITS = 8  # a number of seconds longer than this is no number we take
_CHALLENGE_HEADERS: Final = {401: "WWW-Authenticate", 407: "Proxy-Authenticate"}


@dataclass(frozen=True)
class BindingKey:
    """What names the binding at the registrar: a change of any needs a new binding."""

    proxy: str
    realm: str
    user: str
    transport: str
    stun_ip: str
    stun_port: int

    @property
    def aor(self) -> str:
        return f"sip:{escape_user(self.user)}@{self.realm}"

    @property
    def server_name(self) -> str:
        """The proxy's host: the name its TLS certificate must carry."""
        return self.proxy.removeprefix("sips:").removeprefix("sip:").partition(":")[0]

    def contact(self, address: Address, transport: str, token: str = "") -> str:
        """Our Contact; its user part carries `token` (`<user>-<token>`, CONTRACT §6.9),
        which only the registrar learns: what it delivers there is the proxy's."""
        user = f"{self.user}-{token}" if token else self.user
        return f"sip:{escape_user(user)}@{address[0]}:{address[1]};transport={transport}"


@dataclass(frozen=True)
class Template:
    """What every REGISTER of one binding shares."""

    identity: BindingKey
    call_id: str
    tag: str
    instance: str  # urn:uuid:...
    user_agent: str

    def request(
        self,
        send: Send,
        account: Account,
        *,
        transport: str,
        via: Address,
        branch: str,
        contact: str,
        stale_contact: str | None,
        cnonce: str,
    ) -> Request:
        """The REGISTER; `stale_contact`, when given, is removed in the same request."""
        aor = self.identity.aor
        contacts = [f'<{contact}>;+sip.instance="<{self.instance}>"']
        if stale_contact:
            contacts.append(f"<{stale_contact}>;expires=0")
        reliable = transport != "udp"
        headers = [
            (
                "Via",
                f"SIP/2.0/{transport.upper()} {via[0]}:{via[1]};branch={branch};rport"
                + (";alias" if reliable else ""),
            ),
            ("Max-Forwards", "70"),
            ("From", f"<{aor}>;tag={self.tag}"),
            ("To", f"<{aor}>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{send.cseq} REGISTER"),
            ("Contact", ", ".join(contacts)),
            ("Expires", str(send.expires)),
            ("User-Agent", self.user_agent),
        ]
        if send.credentials is not None:
            headers.append(
                self._authorization(send.credentials, send.nonce_count, account, cnonce)
            )
        return Request("REGISTER", f"sip:{self.identity.realm}", Headers(tuple(headers)))

    def _authorization(
        self, credentials: Challenge, nc: int, account: Account, cnonce: str
    ) -> tuple[str, str]:
        challenge = _parsed(credentials.header)
        assert isinstance(challenge, digest.DigestChallenge)  # answer_of() checked it
        value = digest.authorization(
            challenge,
            digest.Credentials(account.auth_user, account.password),
            "REGISTER",
            f"sip:{self.identity.realm}",
            cnonce=cnonce,
            nc=nc,
        )
        return ("Proxy-Authorization" if credentials.proxy else "Authorization", value)


@functools.lru_cache(maxsize=4)  # the challenge in use, parsed once and not per REGISTER
def _parsed(header: str) -> digest.DigestChallenge | digest.Unsupported:
    return digest.parse_challenge(header)


def answer_of(response: Response, contact: str | None) -> RegisterReply:
    """A final response to our REGISTER, as the machine needs it."""
    headers = response.headers
    return RegisterReply(
        response.code,
        response.reason,
        challenge_of(response),
        _seconds(headers.get("Min-Expires")),
        granted(response, contact),
        retry_after(headers.get("Retry-After")),
    )


def retry_after(text: str | None) -> int | None:
    """The seconds of a Retry-After header (RFC 3261 §20.33: `120 (comment);duration=60`)."""
    if text is None:
        return None
    return _seconds(text.split(";")[0].split("(")[0].strip())


def challenge_of(response: Response) -> Challenge | None:
    """The first challenge we can answer: of a 401 in its WWW-Authenticate headers, of a
    407 in its Proxy-Authenticate headers (RFC 3261 §22.2, §22.3), in the server's order."""
    header = _CHALLENGE_HEADERS.get(response.code)
    if header is None:
        return None
    chosen = digest.choose(response.headers.get_all(header))
    if isinstance(chosen, digest.Unsupported):
        return None
    text, parsed = chosen
    return Challenge(text, parsed.nonce, response.code == 407, parsed.stale)


def granted(response: Response, contact: str | None) -> int | None:
    """The expiry granted to our contact; else the Expires header (RFC 3261 §10.2.4)."""
    for value in response.headers.get_all("Contact"):
        parsed = parse_name_addr(value)
        if parsed is not None and parsed.uri == contact:
            return _seconds(parsed.params.get("expires"))
    return _seconds(response.headers.get("Expires"))


def public_address(
    via_params: dict[str, str], advertised: Address, reliable: bool
) -> Address | None:
    """RFC 3581: where the registrar saw our request come from, when it says.

    On a connection only `received` counts: `rport` names the connection's own port,
    not the port where we listen.
    """
    received, rport = via_params.get("received"), _seconds(via_params.get("rport"))
    if reliable:
        return (received, advertised[1]) if received else None
    if received is None and rport is None:
        return None
    return (received or advertised[0], rport if rport is not None else advertised[1])


def _seconds(text: str | None) -> int | None:
    if text is None or not text.isascii() or not text.isdigit() or len(text) > _MAX_DIGITS:
        return None
    return int(text)
