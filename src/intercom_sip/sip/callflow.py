"""A call's messages on the wire, pure: the checks an incoming INVITE passes, the INVITE,
responses and INFO we build, digest answers to a challenged INVITE, DTMF in INFO bodies,
and the numbers `call/dial` takes. `call.py` decides when; this module says what.
"""

import random
import re
from dataclasses import dataclass
from typing import Final

from intercom_sip.sip import digest, sdp
from intercom_sip.sip.message import (
    Headers,
    Request,
    Response,
    parse_name_addr,
    response_to,
)
from intercom_sip.sip.negotiation import Local
from intercom_sip.sip.syntax import DTMF_DIGITS
from intercom_sip.sip.transactions import MAGIC

ALLOW: Final = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE"
SUPPORTED: Final = ""  # no option tag: an OPTIONS answer says so (RFC 3261 §11.2)
REDIRECTS: Final = frozenset({301, 302})  # followed to their first Contact (§6.10)
SDP: Final = "application/sdp"
DTMF_RELAY: Final = "application/dtmf-relay"
DTMF: Final = "application/dtmf"
# Some phones name * and # by their RFC 4733 event numbers in dtmf-relay bodies.
EVENT_NAMES: Final = {str(event): DTMF_DIGITS[event] for event in range(10, len(DTMF_DIGITS))}
INFO_DURATION: Final = 100  # ms, in the INFO bodies we send
SINGLE: Final = ("Call-ID", "From", "To", "CSeq", "Max-Forwards", "Content-Type")
_NUMBER = re.compile(r"[0-9]{1,32}")
_IPV4 = re.compile(
    r"sip:((?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3})"
)
_SIP_URI = re.compile(
    r"sip:[A-Za-z0-9\-_.!~*'()&=+$,;?/%]{1,64}@[A-Za-z0-9\-.]{1,253}(?::[0-9]{1,5})?"
)


NO_RTP_PORT: Final = 0  # Here's media port when the shell could lease none for a new call


@dataclass(frozen=True)
class Here:
    """Where we are, as the shell knows it for the flow a call uses: our Contact URI, the
    sent-by of our Via, the transport (UDP, TCP, TLS) and the RTP port ready for a call
    (NO_RTP_PORT outside a new call, or when none could be had)."""

    contact: str
    sent_by: str
    transport: str
    media: Local

    @property
    def secure(self) -> bool:
        """Keys may travel in this signalling (RFC 4568 §8.3): only over TLS."""
        return self.transport.upper() == "TLS"


@dataclass(frozen=True)
class InviteRefusal:
    """Why an incoming INVITE is answered with a failure, and what the call log says."""

    code: int
    reason: str
    end_reason: str = "failed"
    detail: str = ""
    extra: tuple[tuple[str, str], ...] = ()


# A new INVITE with no RTP port to offer: 503, not 488 (RFC 3261 §21.5.4: the monitor is
# out of a resource for now; the offer is fine, and 488 would ask the caller to change
# it). Retry-After: ports come back when a call ends.
NO_PORT_REFUSAL: Final = InviteRefusal(
    503, "Service Unavailable", detail="no free RTP port", extra=(("Retry-After", "5"),)
)


@dataclass(frozen=True)
class Callee:
    """What `call/dial` calls: a URI, and whether it goes straight to that address."""

    uri: str
    direct: bool


def target_of(number: str, realm: str) -> Callee | None:
    """§6.3's numbers: digits call `sip:<digits>@<realm>`, `sip:<IPv4>` is direct, a
    `sip:user@host` URI calls itself; anything else is None (400 Wrong number format)."""
    if _NUMBER.fullmatch(number):
        return Callee(f"sip:{number}@{realm}", False)
    if _IPV4.fullmatch(number):
        return Callee(number, True)
    if _SIP_URI.fullmatch(number):
        return Callee(number, False)
    return None


# --- identifiers -----------------------------------------------------------------------------


def new_tag(rng: random.Random) -> str:
    return f"{rng.getrandbits(32):08x}"


def new_branch(rng: random.Random) -> str:
    return f"{MAGIC}{rng.getrandbits(64):016x}"


def via(here: Here, branch: str = "") -> str:
    """Our Via; without a branch for an ACK to a 2xx (the core gives it a new one)."""
    branch_param = f";branch={branch}" if branch else ""
    return f"SIP/2.0/{here.transport.upper()} {here.sent_by}{branch_param};rport"


# --- incoming INVITEs ----------------------------------------------------------------------


def refusal_of(invite: Request) -> InviteRefusal | None:
    """The message checks of an incoming INVITE, first failure first (RFC 3261 §8.2)."""
    headers = invite.headers
    doubled = [name for name in SINGLE if len(headers.get_all(name)) > 1]
    required = [o.strip() for v in headers.get_all("Require") for o in v.split(",") if o.strip()]
    content_type = _media_type(headers.get("Content-Type"))
    if doubled:  # RFC 4475 §3.3.8
        return InviteRefusal(400, f"Multiple {doubled[0]}", detail=f"multiple {doubled[0]}")
    if required:  # RFC 4475 §3.3.5: we support no extension
        unsupported = ("Unsupported", ", ".join(required))
        return InviteRefusal(
            420, "Bad Extension", detail="unsupported extension", extra=(unsupported,)
        )
    if (
        len(headers.get_all("Contact")) != 1
        or parse_name_addr(headers.get_all("Contact")[0]) is None
    ):
        return InviteRefusal(400, "Missing Contact", detail="no Contact")
    if invite.body and content_type != SDP:  # RFC 4475 §3.3.6, §3.1.1.11
        accept = ("Accept", SDP)
        return InviteRefusal(415, "Unsupported Media Type", detail="not SDP", extra=(accept,))
    if not accepts_sdp(headers):  # RFC 4475 §3.3.15
        return InviteRefusal(406, "Not Acceptable", detail="SDP not accepted")
    return None


def accepts_sdp(headers: Headers) -> bool:
    """Whether our answer may be SDP: no Accept, or one that names it (§20.1)."""
    values = headers.get_all("Accept")
    if not values:
        return True
    kinds = {_media_type(kind) for value in values for kind in value.split(",")}
    return bool(kinds & {SDP, "application/*", "*/*"})


def offer_of(message: Request | Response) -> sdp.SessionDescription | sdp.SdpError | None:
    """The SDP a message carries; None without a body."""
    if not message.body:
        return None
    if _media_type(message.headers.get("Content-Type")) != SDP:
        return sdp.SdpError("not application/sdp")
    return sdp.parse(message.body)


def respond(  # noqa: PLR0917 - a response's few facts, in their natural order
    request: Request,
    code: int,
    reason: str,
    tag: str,
    contact: str = "",
    body: sdp.SessionDescription | None = None,
    extra: tuple[tuple[str, str], ...] = (),
) -> Response:
    """A response of ours. A dialog-forming one (`contact` given) copies the request's
    Record-Route in order and carries our Contact (§12.1.1)."""
    forming: list[tuple[str, str]] = []
    if contact:
        forming += [("Record-Route", route) for route in request.headers.get_all("Record-Route")]
        forming += [("Contact", f"<{contact}>")]
    if 200 <= code < 300 or code in (405, 415):
        forming += [("Allow", ALLOW)]
    content = [("Content-Type", SDP)] if body is not None else []
    response = response_to(request, code, reason, tag, [*forming, *extra, *content])
    if body is None:
        return response
    return Response(response.code, response.reason, response.headers, sdp.build(body))


# --- outgoing INVITEs --------------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    """What every INVITE of one outgoing call shares."""

    target: str
    aor: str
    tag: str
    call_id: str
    route: tuple[str, ...]
    here: Here
    user_agent: str
    request_uri: str = ""  # where a redirect sent us; "" for `target` itself


def redirect_target(response: Response) -> str | None:
    """The first Contact of a 3xx as a Request-URI (RFC 3261 §8.1.3.4: without its
    headers and method); None when there is none or it is not a `sip:` URI."""
    values = response.headers.get_all("Contact")
    first = values[0].strip() if values else ""
    if not first.startswith(("<", '"')) and "<" not in first:
        first = first.partition(",")[0]  # addr-specs: `sip:a@b, sip:c@d`
    parsed = parse_name_addr(first)
    if parsed is None or not parsed.uri.lower().startswith("sip:"):
        return None
    uri = parsed.uri.partition("?")[0]
    return ";".join(p for p in uri.split(";") if not p.lower().startswith("method="))


def redirect_problem(target: str | None, tried: tuple[str, ...], most: int) -> str:
    """Why a redirect is not followed ("" when it is): `tried` holds every Request-URI
    of the call so far, the first one included."""
    if target is None:
        return "redirect without Contact"
    if target in tried:
        return "redirect loop"
    if len(tried) > most:
        return "too many redirects"
    return ""


def invite(
    out: Outgoing,
    cseq: int,
    branch: str,
    offer: sdp.SessionDescription,
    auth: tuple[tuple[str, str], ...] = (),
) -> Request:
    headers = (
        ("Via", via(out.here, branch)),
        *(("Route", route) for route in out.route),
        ("Max-Forwards", "70"),
        ("From", f"<{out.aor}>;tag={out.tag}"),
        ("To", f"<{out.target}>"),
        ("Call-ID", out.call_id),
        ("CSeq", f"{cseq} INVITE"),
        ("Contact", f"<{out.here.contact}>"),
        ("Allow", ALLOW),
        ("User-Agent", out.user_agent),
        *auth,
        ("Content-Type", SDP),
    )
    return Request("INVITE", out.request_uri or out.target, Headers(headers), sdp.build(offer))


CHALLENGES: Final = {
    401: ("WWW-Authenticate", "Authorization"),
    407: ("Proxy-Authenticate", "Proxy-Authorization"),
}


@dataclass(frozen=True)
class DigestAnswer:
    """A digest answer to one challenge: the header to add, and the nonce it used."""

    header: tuple[str, str]
    nonce: str
    realm: str


def answer_challenge(
    response: Response, uri: str, credentials: digest.Credentials, cnonce: str
) -> DigestAnswer | digest.Unsupported:
    """The (Proxy-)Authorization for a 401/407 to our INVITE (RFC 3261 §22.2)."""
    names = CHALLENGES.get(response.code)
    if names is None:
        return digest.Unsupported("not a challenge")
    chosen = digest.choose(response.headers.get_all(names[0]))
    if isinstance(chosen, digest.Unsupported):
        return chosen
    _, challenge = chosen
    value = digest.authorization(challenge, credentials, "INVITE", uri, cnonce=cnonce, nc=1)
    return DigestAnswer((names[1], value), challenge.nonce, challenge.realm)


# --- DTMF in INFO (application/dtmf-relay, application/dtmf) ---------------------------------


@dataclass(frozen=True)
class BadDtmf:
    reason: str


def dtmf_of(request: Request) -> str | BadDtmf | None:
    """The digits an INFO carries; None for an INFO that is not DTMF (an empty one is a
    keep-alive some phones send)."""
    kind = _media_type(request.headers.get("Content-Type"))
    if not request.body:
        return ""
    reader = _DTMF_READERS.get(kind)
    if reader is None:
        return None
    text = request.body.decode("utf-8", "replace")
    digits = reader(text)
    if not digits or any(digit not in DTMF_DIGITS for digit in digits):
        return BadDtmf("Bad DTMF")
    return digits


def _relay_digits(text: str) -> str:
    for line in text.splitlines():
        name, _, value = line.partition("=")
        if name.strip().lower() == "signal":
            signal = value.strip().upper()
            return EVENT_NAMES.get(signal, signal) if len(signal) <= 2 else ""
    return ""


def _plain_digits(text: str) -> str:
    return "".join(text.split()).upper()


_DTMF_READERS: Final = {DTMF_RELAY: _relay_digits, DTMF: _plain_digits}


def dtmf_info_body(digit: str) -> tuple[tuple[tuple[str, str], ...], bytes]:
    """The Content-Type and body of an INFO that sends one digit."""
    body = f"Signal={digit}\r\nDuration={INFO_DURATION}\r\n".encode()
    return (("Content-Type", DTMF_RELAY),), body


def _media_type(value: str | None) -> str:
    return (value or "").partition(";")[0].strip().lower()


# The end reason of an outgoing call by the final response that ended it (§6.8).
FAILURE_REASONS: Final = {
    486: "busy",
    600: "busy",
    603: "declined",
    480: "no answer",
    408: "no answer",
    487: "cancelled",
}


def end_reason_of(code: int) -> str:
    return FAILURE_REASONS.get(code, "failed")
