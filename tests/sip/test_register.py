"""REGISTER requests built and answers read, without a network."""

import hashlib

import pytest

from intercom_sip.sip.message import Headers, Request, Response, parse, request_bytes
from intercom_sip.sip.register_message import (
    BindingKey,
    Template,
    answer_of,
    granted,
    public_address,
)
from intercom_sip.sip.registration import Account, Challenge, RegisterReply, Send

IDENTITY = BindingKey("sip:pbx.example.com", "example.com", 'a#b c"<%', "udp", "", 0)
TEMPLATE = Template(
    IDENTITY,
    "call-1",
    "tag1",
    "urn:uuid:00000000-0000-4000-8000-000000000001",
    "intercom-sip/test",
)
ACCOUNT = Account('a#b c"<%', "s3cret!", 30)
CONTACT = IDENTITY.contact(("192.0.2.10", 5060), "udp")
KAMAILIO = 'Digest realm="example.com", nonce="abc123", qop="auth"'


def request(send: Send, transport: str = "udp", stale: str | None = None) -> Request:
    data = request_bytes(
        TEMPLATE.request(
            send,
            ACCOUNT,
            transport=transport,
            via=("192.0.2.10", 5060),
            branch="z9hG4bKb1",
            contact=CONTACT,
            stale_contact=stale,
            cnonce="c0ffee",
        )
    )
    parsed = parse(data)
    assert isinstance(parsed, Request)
    return parsed


def test_first_register() -> None:
    sent = request(Send(1, 30, None, 0))
    assert (sent.method, sent.uri) == ("REGISTER", "sip:example.com")
    assert list(sent.headers) == [
        ("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKb1;rport"),
        ("Max-Forwards", "70"),
        ("From", "<sip:a%23b%20c%22%3C%25@example.com>;tag=tag1"),
        ("To", "<sip:a%23b%20c%22%3C%25@example.com>"),
        ("Call-ID", "call-1"),
        ("CSeq", "1 REGISTER"),
        (
            "Contact",
            "<sip:a%23b%20c%22%3C%25@192.0.2.10:5060;transport=udp>"
            ';+sip.instance="<urn:uuid:00000000-0000-4000-8000-000000000001>"',
        ),
        ("Expires", "30"),
        ("User-Agent", "intercom-sip/test"),
        ("Content-Length", "0"),
    ]


def test_answered_challenge_quotes_the_user_and_signs_the_request_uri() -> None:
    challenge = Challenge(KAMAILIO, "abc123", proxy=False)
    sent = request(Send(2, 30, challenge, 1))
    ha1 = hashlib.md5(b'a#b c"<%:example.com:s3cret!').hexdigest()
    ha2 = hashlib.md5(b"REGISTER:sip:example.com").hexdigest()
    response = hashlib.md5(f"{ha1}:abc123:00000001:c0ffee:auth:{ha2}".encode()).hexdigest()
    assert sent.headers.get("Authorization") == (
        'Digest username="a#b c\\"<%", realm="example.com", nonce="abc123",'
        f' uri="sip:example.com", response="{response}", algorithm=MD5, qop=auth,'
        ' nc=00000001, cnonce="c0ffee"'
    )


def test_proxy_challenge_gets_proxy_authorization() -> None:
    sent = request(Send(2, 30, Challenge(KAMAILIO, "abc123", proxy=True), 1))
    assert sent.headers.get("Authorization") is None
    assert (sent.headers.get("Proxy-Authorization") or "").startswith("Digest username=")


def test_streams_ask_for_connection_reuse() -> None:
    sent = request(Send(1, 30, None, 0), transport="tls")
    assert sent.headers.get("Via") == "SIP/2.0/TLS 192.0.2.10:5060;branch=z9hG4bKb1;rport;alias"


def test_a_moved_contact_removes_the_old_one() -> None:
    old = IDENTITY.contact(("10.0.0.2", 5060), "udp")
    sent = request(Send(3, 30, None, 0), stale=old)
    assert sent.headers.get_all("Contact")[1] == f"<{old}>;expires=0"


def test_unregister_asks_expires_zero() -> None:
    assert request(Send(4, 0, None, 0)).headers.get("Expires") == "0"


def response(code: int, reason: str, *extra: tuple[str, str]) -> Response:
    return Response(code, reason, Headers(extra))


def test_answer_of_a_challenge() -> None:
    assert answer_of(
        response(401, "Unauthorized", ("WWW-Authenticate", KAMAILIO)), CONTACT
    ) == RegisterReply(401, "Unauthorized", Challenge(KAMAILIO, "abc123", proxy=False))
    stale = KAMAILIO + ", stale=true"
    assert answer_of(
        response(407, "Proxy Auth", ("Proxy-Authenticate", stale)), CONTACT
    ) == RegisterReply(407, "Proxy Auth", Challenge(stale, "abc123", proxy=True, stale=True))


@pytest.mark.parametrize(
    "header",
    ['Basic realm="x"', 'Digest realm="x"', 'Digest realm="x", nonce="n", algorithm=SHA-512'],
)
def test_a_challenge_we_cannot_answer_is_none(header: str) -> None:
    assert answer_of(
        response(401, "Unauthorized", ("WWW-Authenticate", header)), CONTACT
    ) == RegisterReply(401, "Unauthorized")


def test_answer_of_several_headers_takes_the_first_we_support() -> None:
    sha512 = 'Digest realm="example.com", nonce="n1", algorithm=SHA-512-256, qop="auth"'
    md5 = 'Digest realm="example.com", nonce="n2", algorithm=MD5, qop="auth"'
    answer = answer_of(
        response(401, "Unauthorized", ("WWW-Authenticate", sha512), ("WWW-Authenticate", md5)),
        CONTACT,
    )
    assert answer == RegisterReply(401, "Unauthorized", Challenge(md5, "n2", proxy=False))
    assert answer.challenge is not None
    sent = request(Send(2, 30, answer.challenge, 1))
    assert ', nonce="n2", ' in (sent.headers.get("Authorization") or "")
    assert ", algorithm=MD5, " in (sent.headers.get("Authorization") or "")


def test_each_code_reads_its_own_header() -> None:
    www, proxy = ("WWW-Authenticate", KAMAILIO), ("Proxy-Authenticate", KAMAILIO)
    assert answer_of(response(401, "Unauthorized", proxy), CONTACT).challenge is None
    assert answer_of(response(407, "Proxy Auth", www), CONTACT).challenge is None
    assert answer_of(response(403, "Forbidden", www), CONTACT).challenge is None


def test_answer_of_423() -> None:
    assert answer_of(
        response(423, "Interval Too Brief", ("Min-Expires", "60")), None
    ) == RegisterReply(423, "Interval Too Brief", min_expires=60)
    for junk in ("-1", "sixty", "1" * 9, "\u0661"):
        assert answer_of(response(423, "Too Brief", ("Min-Expires", junk)), None) == RegisterReply(
            423, "Too Brief"
        )


def test_granted_is_our_contacts_expires() -> None:
    ok = response(
        200,
        "OK",
        ("Contact", "<sip:other@10.0.0.9>;expires=3600"),
        ("Contact", f"<{CONTACT}>;expires=28"),
        ("Expires", "99"),
    )
    assert granted(ok, CONTACT) == 28
    assert granted(ok, "sip:nobody@nowhere") == 99
    assert granted(response(200, "OK"), CONTACT) is None


@pytest.mark.parametrize(
    ("params", "reliable", "expected"),
    [
        ({}, False, None),
        ({"rport": ""}, False, None),
        ({"rport": "40000"}, False, ("192.0.2.10", 40000)),
        ({"received": "203.0.113.7", "rport": "40000"}, False, ("203.0.113.7", 40000)),
        ({"received": "203.0.113.7"}, False, ("203.0.113.7", 5060)),
        ({"received": "203.0.113.7", "rport": "40000"}, True, ("203.0.113.7", 5060)),
        ({"rport": "40000"}, True, None),
    ],
)
def test_public_address(
    params: dict[str, str], reliable: bool, expected: tuple[str, int] | None
) -> None:
    assert public_address(params, ("192.0.2.10", 5060), reliable) == expected


def test_identity_server_name() -> None:
    assert (
        BindingKey("sips:pbx.example.com:5061", "r", "u", "tls", "", 0).server_name
        == "pbx.example.com"
    )
    assert BindingKey("192.0.2.1", "r", "u", "udp", "", 0).server_name == "192.0.2.1"


def test_the_parsed_challenges_kept_are_bounded() -> None:
    """Each REGISTER answers its own challenge; the parsed ones kept are the last four."""
    from intercom_sip.sip import register_message

    nonces = []
    for n in range(10):
        challenge = Challenge(f'Digest realm="r", nonce="n{n}"', f"n{n}", False)
        answered = request(Send(2, 30, challenge, 1)).headers.get("Authorization") or ""
        nonces.append(answered.split("nonce=", 1)[1].split(",", 1)[0])
    assert nonces == [f'"n{n}"' for n in range(10)]
    assert register_message._parsed.cache_info().currsize == 4
