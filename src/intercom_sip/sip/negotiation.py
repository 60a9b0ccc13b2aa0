"""SDP offer/answer (RFC 3264) for one G.711 audio stream, with SDES keys (RFC 4568).

Pure: our addresses, ports, session id and SRTP key come in as a `Local` value; offers
and answers are `SessionDescription`s; what was agreed is a `Negotiated` value. An offer
we cannot take is a `NotAcceptable` value: the INVITE is answered 488.
"""

import ipaddress
import re
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from .sdes import Crypto, crypto_value, first_usable
from .sdp import Attribute, ConnectionData, Media, Origin, SessionDescription

PLAIN: Final = "RTP/AVP"
SECURE: Final = "RTP/SAVP"
EVENTS: Final = "telephone-event"
PTIMES: Final = frozenset({20, 30, 40})  # ms a packet of ours may hold; else DEFAULT_PTIME
DEFAULT_PTIME: Final = 20
RTCP_MUX: Final = "rtcp-mux"  # RFC 5761 §5.1.1
OUR_EVENT_TYPE: Final = 101
G711: Final = {"PCMU": 0, "PCMA": 8}  # name -> static payload type (RFC 3551)
STATIC: Final = {str(pt): (name, "8000") for name, pt in G711.items()}

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]

# What each direction lets us do (RFC 3264 §6.1); the answer's is the mirror of the offer's.
ABILITIES: Final[dict[Direction, frozenset[str]]] = {
    "sendrecv": frozenset({"send", "recv"}),
    "sendonly": frozenset({"send"}),
    "recvonly": frozenset({"recv"}),
    "inactive": frozenset(),
}
DIRECTIONS: Final[dict[frozenset[str], Direction]] = {
    abilities: name for name, abilities in ABILITIES.items()
}
MIRROR: Final = {"send": "recv", "recv": "send"}
# RFC 3264 §8.4: RFC 2543 held a call with c=0.0.0.0; we must not send there.
HOLD_ADDRESSES: Final = frozenset({"0.0.0.0", "::"})  # noqa: S104 - not a bind

NO_AUDIO: Final = "no audio stream offered"
NO_G711: Final = "no G.711 in the offer"
SRTP_REFUSED: Final = "RTP/SAVP is refused without TLS"
NO_KEY: Final = "no usable AES_CM_128_HMAC_SHA1_80 key"
BAD_PROTO: Final = "unsupported media transport"
NO_ADDRESS: Final = "no connection address"
REFUSED: Final = "the answer refused our audio"

_PORT = re.compile(r"[0-9]{1,5}")
_PTIME_TEXTS: Final = frozenset(str(ms) for ms in PTIMES)
_RTPMAP = re.compile(r"([0-9]{1,3}) ([^/\s]+)/([0-9]+)(?:/1)?")


@dataclass(frozen=True)
class Local:
    """Our side of the session: where we receive, and our SRTP key when there is one."""

    address: str
    port: int
    session_id: int
    key: bytes | None = field(default=None, repr=False)  # our 30 bytes: offer RTP/SAVP
    direction: Direction = "sendrecv"  # our wish: "sendonly" puts the peer on hold


@dataclass(frozen=True)
class Negotiated:
    """What was agreed: how we send and what we receive."""

    codec: str  # PCMU or PCMA
    payload_type: int
    event_payload_type: int | None
    remote_address: str | None  # None: send nothing (the peer is on 0.0.0.0 hold)
    remote_port: int
    direction: Direction  # ours
    remote_key: bytes | None = field(default=None, repr=False)  # the peer's SRTP key
    ptime: int = DEFAULT_PTIME  # ms of audio in each packet we send
    rtcp_mux: bool = False  # RTCP on the RTP port (RFC 5761)
    rtcp_port: int | None = None  # the peer's RTCP port when not RTP's + 1 (RFC 3605)


@dataclass(frozen=True)
class NotAcceptable:
    reason: str
    status: int = 488


@dataclass(frozen=True)
class SdpAnswer:
    sdp: SessionDescription
    media: Negotiated


def make_offer(local: Local, previous: SessionDescription | None = None) -> SessionDescription:
    """Our offer: PCMU, PCMA, telephone-event; RTP/SAVP with our key when we have one."""
    formats = (*map(str, G711.values()), str(OUR_EVENT_TYPE))
    maps = [(str(pt), f"{name}/8000") for name, pt in G711.items()]
    media = _our_media(local, formats, [*maps, (str(OUR_EVENT_TYPE), f"{EVENTS}/8000")])
    return revise(previous, _session(local, media))


def answer(
    offer: SessionDescription, local: Local, srtp: bool, previous: SessionDescription | None = None
) -> SdpAnswer | NotAcceptable:
    """Our answer: the first G.711 audio stream taken, every other stream refused (port 0).

    `srtp`: whether keys may travel in this signalling (TLS); an RTP/SAVP stream is
    refused without it.
    """
    reasons = [_refusal(media, offer, srtp and local.key is not None) for media in offer.media]
    chosen = next((i for i, reason in enumerate(reasons) if reason is None), None)
    if chosen is None:
        first_audio = next(
            (r for m, r in zip(offer.media, reasons, strict=True) if m.kind == "audio"), None
        )
        return NotAcceptable(first_audio or NO_AUDIO)
    taken = _agree(offer.media[chosen], offer, local)
    sections = tuple(
        _our_answer_media(local, offer.media[i], taken) if i == chosen else _rejected(m)
        for i, m in enumerate(offer.media)
    )
    return SdpAnswer(revise(previous, _session(local, *sections)), taken)


def read_answer(sdp: SessionDescription, offer: SessionDescription) -> Negotiated | NotAcceptable:
    """What the peer's answer to our offer agreed: its first stream mirrors our audio."""
    if not sdp.media or sdp.media[0].port == 0:
        return NotAcceptable(REFUSED)
    media, ours = sdp.media[0], offer.media[0]
    offered = set(ours.formats)
    if media.proto != ours.proto:
        return NotAcceptable(BAD_PROTO)
    if _codec(media, {fmt for fmt in media.formats if fmt in offered}) is None:
        return NotAcceptable(NO_G711)
    if ours.proto == SECURE and first_usable(media.values("crypto"), _tags(ours)) is None:
        return NotAcceptable(NO_KEY)
    if _address(media, sdp) is None:
        return NotAcceptable(NO_ADDRESS)
    wish = ABILITIES[_direction(ours, offer)]
    return _negotiated(media, sdp, wish, offered)


def revise(previous: SessionDescription | None, new: SessionDescription) -> SessionDescription:
    """`new` numbered after `previous`: the same version if nothing changed, else one more."""
    if previous is None:
        return new
    if new.with_version(previous.origin.version) == previous:
        return previous
    return new.with_version(previous.origin.version + 1)


def _refusal(media: Media, offer: SessionDescription, srtp: bool) -> str | None:
    """Why we would refuse this stream, or None to take it."""
    checks = (
        (media.kind == "audio" and media.port != 0, NO_AUDIO),
        (media.proto in (PLAIN, SECURE), BAD_PROTO),
        (media.proto == PLAIN or srtp, SRTP_REFUSED),
        (media.proto == PLAIN or first_usable(media.values("crypto")) is not None, NO_KEY),
        (_codec(media, set(media.formats)) is not None, NO_G711),
        (_address(media, offer) is not None, NO_ADDRESS),
    )
    return next((reason for passed, reason in checks if not passed), None)


def _agree(media: Media, offer: SessionDescription, local: Local) -> Negotiated:
    return _negotiated(media, offer, ABILITIES[local.direction], set(media.formats))


def _negotiated(
    media: Media, sdp: SessionDescription, wish: frozenset[str], usable: set[str]
) -> Negotiated:
    """Our side of `media`, a stream of the peer's SDP that has passed the checks."""
    pt, name = _codec(media, usable) or (0, "PCMU")
    address = _address(media, sdp)
    theirs = ABILITIES[_direction(media, sdp)]
    abilities = wish & {MIRROR[ability] for ability in theirs}
    if address in HOLD_ADDRESSES:
        address, abilities = None, abilities - {"send"}
    crypto = first_usable(media.values("crypto")) if media.proto == SECURE else None
    events = _event_type(media)
    key = crypto.key if crypto else None
    return Negotiated(
        name,
        pt,
        events,
        address,
        media.port,
        DIRECTIONS[abilities],
        key,
        _ptime(media),
        media.has(RTCP_MUX),
        _rtcp_port(media),
    )


def _rtcp_port(media: Media) -> int | None:
    """RFC 3605's `a=rtcp:PORT [address]`: the port, when it is one; the address is
    not taken (RTCP goes to the host RTP goes to)."""
    port = next(iter(media.values("rtcp")), "").split(" ", 1)[0]
    return int(port) if _PORT.fullmatch(port) and 0 < int(port) <= 65535 else None


def _ptime(media: Media) -> int:
    """The stream's ptime when we can send it (20, 30 or 40 ms), else 20."""
    value = next(iter(media.values("ptime")), "").strip()
    return int(value) if value in _PTIME_TEXTS else DEFAULT_PTIME


def _codec(media: Media, usable: set[str]) -> tuple[int, str] | None:
    """The first G.711 format of the stream among `usable`: (payload type, name)."""
    maps = _rtpmaps(media)
    for fmt in media.formats:
        name, rate = maps.get(fmt) or STATIC.get(fmt, ("", ""))
        if fmt in usable and name.upper() in G711 and rate == "8000":
            return int(fmt), name.upper()
    return None


def _event_type(media: Media) -> int | None:
    maps = _rtpmaps(media)
    for fmt in media.formats:
        name, rate = maps.get(fmt, ("", ""))
        # Encoding names are case-insensitive (RFC 8866 §6.6): TELEPHONE-EVENT is one.
        if name.lower() == EVENTS and rate == "8000":
            return int(fmt)
    return None


def _rtpmaps(media: Media) -> dict[str, tuple[str, str]]:
    matches = (_RTPMAP.fullmatch(value) for value in media.values("rtpmap"))
    return {m[1]: (m[2], m[3]) for m in matches if m is not None}


def _tags(media: Media) -> set[str]:
    return {value.split(" ", 1)[0] for value in media.values("crypto")}


def _address(media: Media, sdp: SessionDescription) -> str | None:
    connection = media.connection or sdp.connection
    return None if connection is None else connection.address


def _direction(media: Media, sdp: SessionDescription) -> Direction:
    """The stream's direction attribute, else the session's, else sendrecv."""
    for attributes in (media.attributes, sdp.attributes):
        found = next((name for name in ABILITIES if (name, None) in attributes), None)
        if found is not None:
            return found
    return "sendrecv"


def _our_answer_media(local: Local, offered: Media, taken: Negotiated) -> Media:
    formats = [str(taken.payload_type)]
    maps = [(str(taken.payload_type), f"{taken.codec}/8000")]
    if taken.event_payload_type is not None:
        formats.append(str(taken.event_payload_type))
        maps.append((str(taken.event_payload_type), f"{EVENTS}/8000"))
    theirs = first_usable(offered.values("crypto"))
    media = _our_media(replace(local, direction=taken.direction), tuple(formats), maps)
    if taken.rtcp_mux:  # RFC 5761 §5.1.1: the answer takes the offer's multiplexing
        media = replace(media, attributes=(*media.attributes, (RTCP_MUX, None)))
    if offered.proto != SECURE or theirs is None or local.key is None:
        return replace(media, proto=PLAIN, attributes=_without_crypto(media.attributes))
    # The answer's crypto line carries the tag of the offer's line it accepts (RFC 4568 §5.1.2).
    ours = ("crypto", crypto_value(Crypto(theirs.tag, local.key)))
    return replace(media, attributes=(*_without_crypto(media.attributes), ours))


def _our_media(local: Local, formats: tuple[str, ...], maps: list[tuple[str, str]]) -> Media:
    attributes: list[Attribute] = [("rtpmap", f"{pt} {name}") for pt, name in maps]
    events = [pt for pt, name in maps if name.startswith(EVENTS)]
    attributes += [("fmtp", f"{pt} 0-15") for pt in events]
    attributes += [("ptime", "20"), (local.direction, None)]
    if local.key is None:
        return Media("audio", local.port, PLAIN, formats, None, tuple(attributes))
    attributes.append(("crypto", crypto_value(Crypto("1", local.key))))
    return Media("audio", local.port, SECURE, formats, None, tuple(attributes))


def _without_crypto(attributes: tuple[Attribute, ...]) -> tuple[Attribute, ...]:
    return tuple(attribute for attribute in attributes if attribute[0] != "crypto")


def _rejected(media: Media) -> Media:
    return Media(media.kind, 0, media.proto, media.formats)


def _session(local: Local, *media: Media) -> SessionDescription:
    kind = "IP6" if ipaddress.ip_address(local.address).version == 6 else "IP4"
    origin = Origin("-", local.session_id, local.session_id, kind, local.address)
    return SessionDescription(origin, "-", ConnectionData(kind, local.address), (), media)
