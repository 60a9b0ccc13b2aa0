"""Dialogs (RFC 3261 §12), pure: a `Dialog` value, made on either side, that matches the
requests of its peer and builds ours.

A dialog is made by the UAS from a received INVITE and the To-tag of its response
(`as_uas`), or by the UAC from its INVITE and the 2xx (`as_uac`). It is a frozen value:
receiving a request (`receive`) or building one (`request`) returns the new dialog.
Requests go by loose routing (`;lr`, RFC 3261 §16.12); a strict router first in the
route set is served as §12.2.1.1 says (its URI becomes the Request-URI and the remote
target the last Route), since the rules are short and old proxies still do it.
"""

from dataclasses import dataclass, replace
from typing import Final

from intercom_sip.sip.message import Headers, Request, Response, parse_cseq, parse_name_addr

Extra = tuple[tuple[str, str], ...]  # more header fields, in order
MAX_ROUTES: Final = 16  # a route set longer than this is refused: no real path is
TARGET_REFRESH: Final = frozenset({"INVITE", "UPDATE"})  # §12.2.2, RFC 3311 §5.2

NO_CONTACT: Final = "Missing or bad Contact"
BAD_FROM_TO: Final = "Bad From or To"
BAD_CSEQ: Final = "Bad CSeq"
TOO_MANY_ROUTES: Final = "Too many Record-Route entries"
OUT_OF_ORDER: Final = "CSeq out of order"


@dataclass(frozen=True)
class DialogError:
    """Why a dialog could not be made or a request not taken, and the status to answer."""

    status: int
    reason: str


@dataclass(frozen=True)
class Dialog:
    """The state of RFC 3261 §12.1: ids, sequence numbers, route set and remote target."""

    call_id: str
    local_tag: str
    remote_tag: str  # "" for an RFC 2543 peer that sent no From tag
    local_uri: str
    remote_uri: str
    local_cseq: int
    remote_cseq: int | None  # None until the peer sends a request in the dialog
    route_set: tuple[str, ...]  # Route header values, in the order requests carry them
    remote_target: str

    def matches(self, request: Request) -> bool:
        """§12.2.2: a request of the peer's is ours by Call-ID, To-tag and From-tag."""
        call_id, local, remote = ids_of(request)
        return (call_id, local, remote) == (self.call_id, self.local_tag, self.remote_tag)

    def receive(self, request: Request) -> "Dialog | DialogError":
        """A request of the peer's in this dialog: its CSeq in order (else 500, §12.2.2),
        and its Contact as the new remote target when it refreshes the target."""
        cseq = parse_cseq(request.headers.get("CSeq") or "")
        if cseq is None:
            return DialogError(400, BAD_CSEQ)
        if request.method == "ACK":
            return self  # an ACK carries its INVITE's number and changes nothing
        if self.remote_cseq is not None and cseq[0] < self.remote_cseq:
            return DialogError(500, OUT_OF_ORDER)
        target = self.remote_target
        if request.method in TARGET_REFRESH and request.headers.get("Contact") is not None:
            contact = contact_uri(request.headers)
            if contact is None:
                return DialogError(400, NO_CONTACT)
            target = contact
        return replace(self, remote_cseq=cseq[0], remote_target=target)

    def request(
        self,
        method: str,
        via: str,
        extra: Extra = (),
        body: bytes = b"",
    ) -> "tuple[Dialog, Request]":
        """A new request of ours in the dialog (BYE, INFO...): the next local CSeq."""
        dialog = replace(self, local_cseq=self.local_cseq + 1)
        return dialog, dialog._build(method, dialog.local_cseq, via, extra, body)

    def ack(self, invite_cseq: int, via: str, extra: Extra = (), body: bytes = b"") -> Request:
        """The ACK for a 2xx (§13.2.2.4): the INVITE's CSeq number, routed like any
        request of the dialog; `extra` carries the INVITE's credentials."""
        return self._build("ACK", invite_cseq, via, extra, body)

    def _build(
        self,
        method: str,
        number: int,
        via: str,
        extra: Extra,
        body: bytes,
    ) -> Request:
        uri, routes = routing(self.route_set, self.remote_target)
        headers = (
            ("Via", via),
            *(("Route", route) for route in routes),
            ("Max-Forwards", "70"),
            ("From", f"<{self.local_uri}>;tag={self.local_tag}"),
            ("To", f"<{self.remote_uri}>" + (f";tag={self.remote_tag}" * bool(self.remote_tag))),
            ("Call-ID", self.call_id),
            ("CSeq", f"{number} {method}"),
            *extra,
        )
        return Request(method, uri, Headers(headers), body)


def as_uas(invite: Request, local_tag: str, local_cseq: int = 0) -> Dialog | DialogError:
    """§12.1.1: the dialog of a received INVITE answered with `local_tag`. Its
    Record-Route, in order, is the route set; its Contact the remote target."""
    headers = invite.headers
    sender, receiver = _party(headers, "From"), _party(headers, "To")
    cseq = parse_cseq(headers.get("CSeq") or "")
    target = contact_uri(headers)
    routes = headers.get_all("Record-Route")
    checks = (
        (sender is not None and receiver is not None, DialogError(400, BAD_FROM_TO)),
        (cseq is not None, DialogError(400, BAD_CSEQ)),
        (target is not None, DialogError(400, NO_CONTACT)),
        (len(routes) <= MAX_ROUTES, DialogError(400, TOO_MANY_ROUTES)),
    )
    failed = next((error for passed, error in checks if not passed), None)
    if failed is not None:
        return failed
    assert sender is not None and receiver is not None and cseq is not None and target
    return Dialog(
        call_id=headers.get("Call-ID") or "",
        local_tag=local_tag,
        remote_tag=sender[1],
        local_uri=receiver[0],
        remote_uri=sender[0],
        local_cseq=local_cseq,
        remote_cseq=cseq[0],
        route_set=tuple(routes),
        remote_target=target,
    )


def as_uac(invite: Request, response: Response) -> Dialog | DialogError:
    """§12.1.2: the dialog our INVITE made with this 2xx (or tagged 1xx): the response's
    Record-Route reversed is the route set, its Contact the remote target. A 2xx without
    a Contact (a broken peer) falls back on the INVITE's Request-URI: it must be ACKed."""
    sender, receiver = _party(invite.headers, "From"), _party(response.headers, "To")
    cseq = parse_cseq(invite.headers.get("CSeq") or "")
    routes = response.headers.get_all("Record-Route")
    if sender is None or receiver is None or not receiver[1]:
        return DialogError(400, BAD_FROM_TO)
    if cseq is None:
        return DialogError(400, BAD_CSEQ)
    if len(routes) > MAX_ROUTES:
        return DialogError(400, TOO_MANY_ROUTES)
    return Dialog(
        call_id=invite.headers.get("Call-ID") or "",
        local_tag=sender[1],
        remote_tag=receiver[1],
        local_uri=sender[0],
        remote_uri=receiver[0],
        local_cseq=cseq[0],
        remote_cseq=None,
        route_set=tuple(reversed(routes)),
        remote_target=contact_uri(response.headers) or invite.uri,
    )


def routing(route_set: tuple[str, ...], remote_target: str) -> tuple[str, tuple[str, ...]]:
    """§12.2.1.1: the Request-URI and the Route header values of a request."""
    if not route_set:
        return remote_target, ()
    first = parse_name_addr(route_set[0])
    first_uri = first.uri if first else route_set[0]
    if loose(first_uri):
        return remote_target, route_set
    # A strict router: it wants itself as the Request-URI and the target last.
    return first_uri, (*route_set[1:], f"<{remote_target}>")


def loose(uri: str) -> bool:
    """Whether a route URI carries the `lr` parameter."""
    params = uri.partition("?")[0].split(";")[1:]
    return any(param.strip().lower().partition("=")[0] == "lr" for param in params)


def ids_of(request: Request | Response) -> tuple[str, str, str]:
    """(Call-ID, To-tag, From-tag): of a request received, the local and remote tags;
    of a response to our request, the remote and local ones."""
    to = parse_name_addr(request.headers.get("To") or "")
    sender = parse_name_addr(request.headers.get("From") or "")
    return (
        request.headers.get("Call-ID") or "",
        to.params.get("tag", "") if to else "",
        sender.params.get("tag", "") if sender else "",
    )


def contact_uri(headers: Headers) -> str | None:
    """The URI of the single Contact a dialog needs (§12.1.1: exactly one); None when
    there is none, several, or `*`."""
    contacts = headers.get_all("Contact")
    if len(contacts) != 1 or contacts[0].strip() == "*":
        return None
    parsed = parse_name_addr(contacts[0])
    return parsed.uri if parsed is not None else None


def _party(headers: Headers, name: str) -> tuple[str, str] | None:
    """(URI, tag) of From or To."""
    parsed = parse_name_addr(headers.get(name) or "")
    return (parsed.uri, parsed.params.get("tag", "")) if parsed is not None else None


@dataclass(frozen=True)
class Hop:
    """Where a request of ours goes first: `host[:port]`, and the transport its URI names
    ("" when it names none)."""

    host_port: str
    transport: str


def next_hop(request: Request) -> Hop | None:
    """RFC 3261 §8.1.2 with loose routing: the first Route's URI, else the Request-URI
    (a strict router's URI is the Request-URI already, §12.2.1.1); None if unreadable."""
    routes = request.headers.get_all("Route")
    uri = request.uri
    if routes:
        parsed = parse_name_addr(routes[0])
        if parsed is None:
            return None
        uri = parsed.uri
    scheme, colon, rest = uri.partition(":")
    if not colon or scheme.lower() not in ("sip", "sips"):
        return None
    address, _, params = rest.rpartition("@")[2].partition(";")
    transport = ""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "transport":
            transport = value.strip().lower()
    return Hop(address.partition("?")[0], transport) if address else None
