"""Dialogs (RFC 3261 §12): made on both sides, requests matched and built, routing."""

import pytest

from intercom_sip.sip.dialog import (
    BAD_FROM_TO,
    MAX_ROUTES,
    NO_CONTACT,
    OUT_OF_ORDER,
    TOO_MANY_ROUTES,
    Dialog,
    DialogError,
    Hop,
    as_uac,
    as_uas,
    next_hop,
    routing,
)
from intercom_sip.sip.message import Headers, Request, Response, parse, request_bytes


def message(text: str) -> Request | Response:
    parsed = parse(text.replace("\n", "\r\n").encode())
    assert isinstance(parsed, Request | Response), parsed
    return parsed


def request(text: str) -> Request:
    parsed = message(text)
    assert isinstance(parsed, Request)
    return parsed


INVITE = """INVITE sip:101@192.0.2.9:5060 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKp1
Via: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bKc1
Record-Route: <sip:192.0.2.1;lr>, <sip:p2.example.com;lr>
From: "Door" <sip:100@example.com>;tag=f1
To: <sip:101@example.com>
Call-ID: d1@192.0.2.50
CSeq: 7 INVITE
Contact: <sip:100@192.0.2.50:5060>
Content-Length: 0

"""

UAS = Dialog(
    call_id="d1@192.0.2.50",
    local_tag="t1",
    remote_tag="f1",
    local_uri="sip:101@example.com",
    remote_uri="sip:100@example.com",
    local_cseq=0,
    remote_cseq=7,
    route_set=("<sip:192.0.2.1;lr>", "<sip:p2.example.com;lr>"),
    remote_target="sip:100@192.0.2.50:5060",
)


def test_the_uas_makes_its_dialog_from_the_invite_and_its_tag() -> None:
    assert as_uas(request(INVITE), "t1") == UAS


def test_the_uac_reverses_the_record_route_of_the_2xx() -> None:
    ours = request(
        """INVITE sip:200@example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKo1
From: <sip:101@example.com>;tag=me
To: <sip:200@example.com>
Call-ID: o1
CSeq: 2 INVITE
Contact: <sip:101@192.0.2.9>
Content-Length: 0

"""
    )
    ok = message(
        """SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKo1
Record-Route: <sip:p2.example.com;lr>
Record-Route: <sip:192.0.2.1;lr>
From: <sip:101@example.com>;tag=me
To: <sip:200@example.com>;tag=them
Call-ID: o1
CSeq: 2 INVITE
Contact: <sip:200@192.0.2.77:5062>
Content-Length: 0

"""
    )
    assert isinstance(ok, Response)
    assert as_uac(ours, ok) == Dialog(
        call_id="o1",
        local_tag="me",
        remote_tag="them",
        local_uri="sip:101@example.com",
        remote_uri="sip:200@example.com",
        local_cseq=2,
        remote_cseq=None,
        route_set=("<sip:192.0.2.1;lr>", "<sip:p2.example.com;lr>"),
        remote_target="sip:200@192.0.2.77:5062",
    )


def test_a_bye_follows_the_route_set_by_loose_routing() -> None:
    dialog, bye = UAS.request("BYE", "SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKb;rport")
    assert dialog.local_cseq == 1
    assert request_bytes(bye).decode() == (
        "BYE sip:100@192.0.2.50:5060 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKb;rport\r\n"
        "Route: <sip:192.0.2.1;lr>\r\n"
        "Route: <sip:p2.example.com;lr>\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:101@example.com>;tag=t1\r\n"
        "To: <sip:100@example.com>;tag=f1\r\n"
        "Call-ID: d1@192.0.2.50\r\n"
        "CSeq: 1 BYE\r\n"
        "Content-Length: 0\r\n\r\n"
    )


def test_the_ack_of_a_2xx_keeps_the_invite_number_and_counts_nothing() -> None:
    ack = UAS.ack(7, "SIP/2.0/UDP h;rport", (("Proxy-Authorization", "Digest x"),))
    assert (ack.method, ack.headers.get("CSeq"), ack.uri) == ("ACK", "7 ACK", UAS.remote_target)
    assert ack.headers.get("Proxy-Authorization") == "Digest x"


@pytest.mark.parametrize(
    ("route_set", "expected"),
    [
        ((), ("sip:t@h", ())),
        (("<sip:p1;lr>", "<sip:p2;lr>"), ("sip:t@h", ("<sip:p1;lr>", "<sip:p2;lr>"))),
        (("<sip:p1;lr=on>",), ("sip:t@h", ("<sip:p1;lr=on>",))),
        # A strict router: its URI is the Request-URI, the target goes last (§12.2.1.1).
        (("<sip:p1>", "<sip:p2;lr>"), ("sip:p1", ("<sip:p2;lr>", "<sip:t@h>"))),
    ],
)
def test_routing(route_set: tuple[str, ...], expected: tuple[str, tuple[str, ...]]) -> None:
    assert routing(route_set, "sip:t@h") == expected


def in_dialog(method: str, cseq: int, contact: str = "", from_tag: str = "f1") -> Request:
    contact_line = f"Contact: <{contact}>\n" if contact else ""
    return request(
        f"""{method} sip:101@192.0.2.9 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{method}{cseq}
From: <sip:100@example.com>{";tag=" + from_tag if from_tag else ""}
To: <sip:101@example.com>;tag=t1
Call-ID: d1@192.0.2.50
CSeq: {cseq} {method}
{contact_line}Content-Length: 0

"""
    )


def test_requests_match_by_call_id_and_both_tags() -> None:
    assert UAS.matches(in_dialog("BYE", 8))
    assert not UAS.matches(in_dialog("BYE", 8, from_tag="other"))


def test_a_lower_cseq_is_500_and_a_higher_one_is_taken() -> None:
    assert UAS.receive(in_dialog("INFO", 6)) == DialogError(500, OUT_OF_ORDER)
    taken = UAS.receive(in_dialog("INFO", 9))
    assert isinstance(taken, Dialog) and taken.remote_cseq == 9


def test_a_reinvite_refreshes_the_target_and_an_info_does_not() -> None:
    reinvite = UAS.receive(in_dialog("INVITE", 8, "sip:100@192.0.2.51"))
    info = UAS.receive(in_dialog("INFO", 8, "sip:100@192.0.2.51"))
    assert isinstance(reinvite, Dialog) and reinvite.remote_target == "sip:100@192.0.2.51"
    assert isinstance(info, Dialog) and info.remote_target == UAS.remote_target


def test_an_ack_changes_nothing() -> None:
    assert UAS.receive(in_dialog("ACK", 7)) is UAS


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (("Contact: <sip:100@192.0.2.50:5060>\n", ""), DialogError(400, NO_CONTACT)),
        (("Contact: <sip:100@192.0.2.50:5060>\n", "Contact: *\n"), DialogError(400, NO_CONTACT)),
        (
            ("Contact: <sip:100@192.0.2.50:5060>\n", "Contact: <sip:a@b>, <sip:c@d>\n"),
            DialogError(400, NO_CONTACT),
        ),
        (
            ('From: "Door" <sip:100@example.com>;tag=f1\n', 'From: "x <sip:a@b>\n'),
            DialogError(400, BAD_FROM_TO),
        ),
    ],
)
def test_an_invite_that_cannot_make_a_dialog(change: tuple[str, str], error: DialogError) -> None:
    assert as_uas(request(INVITE.replace(*change)), "t1") == error


def test_the_route_set_is_bounded() -> None:
    routes = "".join(f"Record-Route: <sip:p{i}.example.com;lr>\n" for i in range(MAX_ROUTES + 1))
    text = INVITE.replace("Record-Route: <sip:192.0.2.1;lr>, <sip:p2.example.com;lr>\n", routes)
    assert as_uas(request(text), "t1") == DialogError(400, TOO_MANY_ROUTES)
    fits = text.replace(f"Record-Route: <sip:p{MAX_ROUTES}.example.com;lr>\n", "")
    assert isinstance(as_uas(request(fits), "t1"), Dialog)


def test_an_rfc2543_caller_without_from_tag_has_a_dialog_too() -> None:
    """RFC 3261 §12.1.1: a From without tag gives an empty remote tag."""
    old = as_uas(request(INVITE.replace(";tag=f1", "")), "t1")
    assert isinstance(old, Dialog) and old.remote_tag == ""
    assert old.matches(in_dialog("BYE", 8, from_tag=""))
    assert not old.matches(in_dialog("BYE", 8))
    _, bye = old.request("BYE", "SIP/2.0/UDP h;branch=z9hG4bKx")
    assert bye.headers.get("To") == "<sip:100@example.com>"


# --- the next hop of a request of ours (RFC 3261 §8.1.2, §18.1.1) -----------------------------


@pytest.mark.parametrize(
    ("uri", "routes", "hop"),
    [
        ("sip:200@192.0.2.70:5060", (), Hop("192.0.2.70:5060", "")),
        ("sip:200@192.0.2.70;transport=TCP", (), Hop("192.0.2.70", "tcp")),
        (
            "sip:200@192.0.2.70:5060",
            ("<sip:127.0.0.1:5061;transport=tls;r2=on;lr>", "<sip:127.0.0.1;lr>"),
            Hop("127.0.0.1:5061", "tls"),
        ),
        ("sips:p.example.com", (), Hop("p.example.com", "")),
        ("sip:p.example.com:5070?Subject=x", (), Hop("p.example.com:5070", "")),
        ("tel:+4930123", (), None),
        ("sip:200@192.0.2.70", ("no uri here <",), None),
    ],
)
def test_the_next_hop_is_the_first_route_else_the_request_uri(
    uri: str, routes: tuple[str, ...], hop: Hop | None
) -> None:
    headers = Headers(tuple(("Route", route) for route in routes))
    assert next_hop(Request("BYE", uri, headers, b"")) == hop
