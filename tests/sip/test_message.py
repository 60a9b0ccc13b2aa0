"""SIP message parsing and building (RFC 3261), with the RFC 4475 torture messages."""

import pytest

from intercom_sip.sip.message import (
    MAX_HEADERS,
    MAX_LINE,
    MAX_MESSAGE,
    Headers,
    NameAddr,
    ParseError,
    Request,
    Response,
    Via,
    build,
    escape_user,
    parse,
    parse_cseq,
    parse_name_addr,
    parse_params,
    parse_via,
    quote,
    redacted,
    request_bytes,
    response_bytes,
    response_to,
    split_list,
    unquote,
)

REQUIRED = (
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n"
    b"From: <sip:100@example.com>;tag=1928301774\r\n"
    b"To: <sip:101@example.com>\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
)
OPTIONS = (
    b"OPTIONS sip:101@example.com SIP/2.0\r\n"
    + REQUIRED
    + b"CSeq: 63104 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
)


def options_with(*lines: bytes, cseq: bytes = b"CSeq: 1 OPTIONS") -> bytes:
    return (
        b"OPTIONS sip:101@example.com SIP/2.0\r\n"
        + REQUIRED
        + cseq
        + b"\r\n"
        + b"".join(line + b"\r\n" for line in lines)
        + b"\r\n"
    )


def request(data: bytes, stream: bool = False) -> Request:
    message = parse(data, stream)
    assert isinstance(message, Request), message
    return message


def response(data: bytes) -> Response:
    message = parse(data)
    assert isinstance(message, Response), message
    return message


# --- valid messages --------------------------------------------------------------------


def test_a_request_parses_into_its_fields() -> None:
    assert parse(OPTIONS) == Request(
        "OPTIONS",
        "sip:101@example.com",
        Headers(
            (
                ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds"),
                ("From", "<sip:100@example.com>;tag=1928301774"),
                ("To", "<sip:101@example.com>"),
                ("Call-ID", "a84b4c76e66710"),
                ("CSeq", "63104 OPTIONS"),
                ("Max-Forwards", "70"),
                ("Content-Length", "0"),
            )
        ),
        b"",
    )


def test_a_response_parses_into_its_fields() -> None:
    data = (
        b"SIP/2.0 401 Unauthorized\r\n" + REQUIRED + b"CSeq: 1 REGISTER\r\n"
        b'WWW-Authenticate: Digest realm="r", nonce="n"\r\n'
        b"Content-Length: 5\r\n\r\nhello"
    )
    message = response(data)
    assert (message.code, message.reason, message.body) == (401, "Unauthorized", b"hello")
    assert message.headers.get("www-authenticate") == 'Digest realm="r", nonce="n"'


def test_an_empty_reason_phrase_is_valid() -> None:
    assert response(b"SIP/2.0 100 \r\n" + REQUIRED + b"CSeq: 1 INVITE\r\n\r\n").reason == ""


@pytest.mark.parametrize(
    ("compact", "full"),
    [
        ("i", "Call-ID"),
        ("v", "Via"),
        ("f", "From"),
        ("t", "To"),
        ("m", "Contact"),
        ("l", "Content-Length"),
        ("c", "Content-Type"),
        ("k", "Supported"),
        ("s", "Subject"),
        ("e", "Content-Encoding"),
    ],
)
def test_every_compact_form_becomes_the_full_name(compact: str, full: str) -> None:
    value = "0" if compact == "l" else "x"
    for spelled in (compact, compact.upper()):
        message = request(options_with(f"{spelled}: {value}".encode()))
        assert message.headers.fields[-1] == (full, value)
        for name in (full, full.lower(), full.upper(), compact):
            assert message.headers.get_all(name)[-1] == value


def test_lookup_ignores_case_for_unknown_headers_too() -> None:
    message = request(options_with(b"X-Door-State: open", b"SUBJECT: ring"))
    assert message.headers.get("x-door-state") == "open"
    assert message.headers.get("X-DOOR-STATE") == "open"
    assert message.headers.get("subject") == "ring"
    assert message.headers.get("s") == "ring"
    assert message.headers.get_all("Subject") == ["ring"]


def test_known_headers_take_their_canonical_spelling() -> None:
    message = request(options_with(b"cAlL-iD: other", b"MAX-FORWARDS: 5", b"cseq: 9 OPTIONS"))
    assert [name for name, _ in message.headers][-3:] == ["Call-ID", "Max-Forwards", "CSeq"]
    assert message.headers.get("Call-ID") == "a84b4c76e66710"  # the first wins
    assert message.headers.get_all("CALL-ID") == ["a84b4c76e66710", "other"]


def test_folded_lines_join_with_one_space() -> None:
    message = request(options_with(b"Subject: one\r\n two\r\n\t three", b"Accept: a/b,\r\n   c/d"))
    assert message.headers.get("Subject") == "one two three"
    assert message.headers.get("Accept") == "a/b, c/d"


def test_list_headers_split_at_top_level_commas_only() -> None:
    message = request(
        options_with(
            b'Contact: "Doe, John" <sip:a@h;x=1,2>;q=0.5, <sip:b@h>',
            b"Contact: sip:c@h",
            b"Via: SIP/2.0/TCP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP b.example.com",
        )
    )
    assert message.headers.get_all("Contact") == [
        '"Doe, John" <sip:a@h;x=1,2>;q=0.5',
        "<sip:b@h>",
        "sip:c@h",
    ]
    assert message.headers.get_all("v") == [
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds",
        "SIP/2.0/TCP a.example.com;branch=z9hG4bK1",
        "SIP/2.0/UDP b.example.com",
    ]
    # Not a list header: the commas stay.
    assert request(options_with(b"Subject: a, b")).headers.get_all("Subject") == ["a, b"]


def test_split_list() -> None:
    assert split_list(r'"a\", <b>" <sip:x>, <sip:y,z>, ,w') == [
        r'"a\", <b>" <sip:x>',
        "<sip:y,z>",
        "w",
    ]
    assert split_list("") == []


def test_a_datagram_body_is_cut_at_content_length() -> None:
    data = options_with(b"Content-Length: 4")[:-2] + b"\r\nbodyEXTRA"
    assert request(data).body == b"body"


def test_a_datagram_without_content_length_takes_the_rest() -> None:
    assert request(options_with() + b"the rest\r\n").body == b"the rest\r\n"


def test_a_stream_message_needs_content_length() -> None:
    assert parse(options_with(), stream=True) == ParseError(400, "Missing Content-Length")
    assert request(options_with(b"l: 2") + b"hi", stream=True).body == b"hi"


def test_bare_lf_line_ends_are_tolerated() -> None:
    message = request(OPTIONS.replace(b"\r\n", b"\n"))
    assert message.headers.get("CSeq") == "63104 OPTIONS"


# --- limits ----------------------------------------------------------------------------


def test_a_message_over_64_kib_is_413() -> None:
    body = b"x" * (MAX_MESSAGE - len(options_with()) + 1)
    assert parse(options_with() + body) == ParseError(413, "Message Too Large")
    assert isinstance(parse(options_with() + body[:-1]), Request)


def test_too_many_headers_is_400() -> None:
    extra = [b"X-N: %d" % n for n in range(MAX_HEADERS - 5)]
    assert isinstance(parse(options_with(*extra)), Request)  # 5 + 123 = 128 lines
    assert parse(options_with(*extra, b"X-N: one more")) == ParseError(400, "Too many headers")


def test_an_overlong_header_line_is_400() -> None:
    fits = b"Subject: " + b"x" * (MAX_LINE - len("Subject: "))
    assert isinstance(parse(options_with(fits)), Request)
    assert parse(options_with(fits + b"x")) == ParseError(400, "Header line too long")


def test_headers_that_are_not_utf8_are_400() -> None:
    assert parse(options_with(b"Subject: \xff")) == ParseError(400, "Headers are not UTF-8")


def test_no_end_of_headers_is_400() -> None:
    assert parse(OPTIONS[:-2]) == ParseError(400, "No end of headers")


@pytest.mark.parametrize("value", [b"\xc2\xb2", b"\xd9\xa1", b"1.5", b"0x10", b""])
def test_a_content_length_that_is_not_ascii_digits_is_400(value: bytes) -> None:
    # Superscript two and Arabic-Indic one pass str.isdigit(); parsing must not raise.
    assert parse(options_with(b"Content-Length: " + value)) == ParseError(
        400, "Bad Content-Length"
    )


@pytest.mark.parametrize("number", [b"\xc2\xb2", b"\xd9\xa1"])
def test_a_cseq_number_that_is_not_ascii_digits_is_400(number: bytes) -> None:
    assert parse(options_with(cseq=b"CSeq: " + number + b" OPTIONS")) == ParseError(
        400, "Bad CSeq"
    )


def test_conflicting_content_lengths_are_400() -> None:
    assert parse(options_with(b"Content-Length: 0", b"l: 1") + b"x") == ParseError(
        400, "Conflicting Content-Length"
    )


# --- RFC 4475 §3.1.1: valid torture messages ---------------------------------------------

WSINV_BODY = (
    b"v=0\r\n"
    b"o=mhandley 29739 7272939 IN IP4 192.0.2.3\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.4\r\n"
    b"t=0 0\r\n"
    b"m=audio 49217 RTP/AVP 0 12\r\n"
    b"m=video 3227 RTP/AVP 31\r\n"
    b"a=rtpmap:31 LPC\r\n"
)
WSINV = (
    b"INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n"
    b"TO :\r\n"
    b" sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n"
    b'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\r\n'
    b"  ;\r\n"
    b"  tag = 98asjd8\r\n"
    b"MaX-fOrWaRdS: 0068\r\n"
    b"Call-ID: wsinv.ndaksdj@192.0.2.1\r\n"
    b"Content-Length   : 150\r\n"
    b"cseq: 0009\r\n"
    b"  INVITE\r\n"
    b"Via  : SIP  /   2.0\r\n"
    b" /UDP\r\n"
    b"    192.0.2.2;rport;branch=390skdjuw\r\n"
    b"s :\r\n"
    b"NewFangledHeader:   newfangled value\r\n"
    b" continued newfangled value\r\n"
    b"UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Route:\r\n"
    b" <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\r\n"
    b"v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n"
    b"  branch  =   z9hG4bK9ikj8  ,\r\n"
    b" SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n"
    b" z9hG4bK30239\r\n"
    b'm:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =\r\n'
    b"      newvalue ;\r\n"
    b"  secondparam ; q = 0.33\r\n"
    b"\r\n" + WSINV_BODY
)


def test_rfc4475_wsinv_short_tortuous_invite() -> None:
    assert len(WSINV_BODY) == 150
    message = request(WSINV)
    assert (message.method, message.uri) == (
        "INVITE",
        "sip:vivekg@chair-dnrc.example.com;unknownparam",
    )
    headers = message.headers
    assert headers.get("Call-ID") == "wsinv.ndaksdj@192.0.2.1"
    assert parse_cseq(headers.get("CSeq") or "") == (9, "INVITE")
    assert headers.get("Max-Forwards") == "0068"
    assert headers.get("Subject") == ""
    assert headers.get("newfangledheader") == "newfangled value continued newfangled value"
    assert headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert [parse_via(v) for v in headers.get_all("Via")] == [
        Via("UDP", "192.0.2.2", None, {"rport": "", "branch": "390skdjuw"}),
        Via("TCP", "spindle.example.com", None, {"branch": "z9hG4bK9ikj8"}),
        Via("UDP", "192.168.255.111", None, {"branch": "z9hG4bK30239"}),
    ]
    assert parse_name_addr(headers.get("To") or "") == NameAddr(
        "sip:vivekg@chair-dnrc.example.com", "", {"tag": "1918181833n"}
    )
    assert parse_name_addr(headers.get("From") or "") == NameAddr(
        "sip:jdrosen@example.com", 'J Rosenberg \\"', {"tag": "98asjd8"}
    )
    assert parse_name_addr(headers.get("Contact") or "") == NameAddr(
        "sip:jdrosen@example.com",
        'Quoted string ""',
        {"newparam": "newvalue", "secondparam": "", "q": "0.33"},
    )
    assert message.body == WSINV_BODY


INTMETH_METHOD = b"!interesting-Method0123456789_*+`.%indeed'~"
INTMETH = (
    INTMETH_METHOD + b" sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,"
    b"weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP host1.example.com;rport;branch=z9hG4bK-.!%66*_+`'~\r\n"
    b'To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" '
    b"<sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>\r\n"
    b"From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;"
    b"fromParam''~+*_!.-%=\"\xd1\x80\xd0\xb0\xd0\xb1\xd0\xbe\xd1\x82\xd0\xb0\xd1\x8e\xd1\x89"
    b"\xd0\xb8\xd0\xb9\";tag=_token~1'+`*%!-.\r\n"
    b"Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\r\n"
    b"CSeq: 139122385 " + INTMETH_METHOD + b"\r\n"
    b"Max-Forwards: 255\r\n"
    b"extensionHeader-!.%*+_`'~:\xef\xbb\xbf\xe5\xa4\xa7\xe5\x81\x9c\xe9\x9b\xbb\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def test_rfc4475_intmeth_wide_range_of_valid_characters() -> None:
    message = request(INTMETH)
    assert message.method == INTMETH_METHOD.decode()
    assert message.uri == (
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,"
        "weird!*pas$wo~d_too.(doesn't-it)@example.com"
    )
    assert message.headers.get("Call-ID") == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert message.headers.get("EXTENSIONHEADER-!.%*+_`'~") == "\ufeff大停電"
    assert parse_name_addr(message.headers.get("To") or "") == NameAddr(
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com",
        "BEL:\x07 NUL:\x00 DEL:\x7f",
    )
    assert parse_name_addr(message.headers.get("From") or "") == NameAddr(
        "sip:mundane@example.com",
        "token1~` token2'+_ token3*%!.-",
        {"fromparam''~+*_!.-%": "работающий", "tag": "_token~1'+`*%!-."},
    )
    assert parse_via(message.headers.get("Via") or "") == Via(
        "TCP", "host1.example.com", None, {"rport": "", "branch": "z9hG4bK-.!%66*_+`'~"}
    )


def test_rfc4475_esc01_escapes_in_the_request_uri_stay_escaped() -> None:
    data = (
        b"INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0\r\n"
        b"To: sip:%75se%72@example.com\r\n"
        b"From: <sip:I%20have%20spaces@example.net>;tag=938\r\n"
        b"Max-Forwards: 87\r\n"
        b"i: esc01.239409asdfakjkn23onasd0-3234\r\n"
        b"CSeq: 234234 INVITE\r\n"
        b"Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw\r\n"
        b"C: application/sdp\r\n"
        b"Contact:\r\n"
        b"  <sip:cal%6Cer@host5.example.net;%6C%72=%6c%72;n%61me=v%61lue%25%34%31>\r\n"
        b"Content-Length: 3\r\n"
        b"\r\n"
        b"v=0"
    )
    message = request(data)
    assert message.uri == "sip:sips%3Auser%40example.com@example.net"
    assert message.headers.get("Content-Type") == "application/sdp"
    assert message.headers.get("Call-ID") == "esc01.239409asdfakjkn23onasd0-3234"
    assert parse_name_addr(message.headers.get("To") or "") == NameAddr("sip:%75se%72@example.com")
    assert parse_name_addr(message.headers.get("Contact") or "") == NameAddr(
        "sip:cal%6Cer@host5.example.net;%6C%72=%6c%72;n%61me=v%61lue%25%34%31"
    )


def test_rfc4475_escnull_escaped_nulls_in_uris() -> None:
    data = (
        b"REGISTER sip:example.com SIP/2.0\r\n"
        b"To: sip:null-%00-null@example.com\r\n"
        b"From: sip:null-%00-null@example.com;tag=839923423\r\n"
        b"Max-Forwards: 70\r\n"
        b"Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd\r\n"
        b"CSeq: 14398234 REGISTER\r\n"
        b"Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw\r\n"
        b"Contact: <sip:%00@host5.example.com>\r\n"
        b"Contact: <sip:%00%00@host5.example.com>\r\n"
        b"L:0\r\n"
        b"\r\n"
    )
    message = request(data)
    assert message.headers.get_all("m") == [
        "<sip:%00@host5.example.com>",
        "<sip:%00%00@host5.example.com>",
    ]
    assert parse_name_addr(message.headers.get("From") or "") == NameAddr(
        "sip:null-%00-null@example.com", "", {"tag": "839923423"}
    )
    assert message.headers.get("Content-Length") == "0"


def test_rfc4475_esc02_percent_that_is_not_an_escape() -> None:
    data = (
        b"RE%47IST%45R sip:registrar.example.com SIP/2.0\r\n"
        b'To: "%Z%45" <sip:resource@example.com>\r\n'
        b'From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23\r\n'
        b"Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf\r\n"
        b"Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209323098\r\n"
        b"Max-Forwards: 70\r\n"
        b"Contact: <sip:alias1@host1.example.com>\r\n"
        b"Contact: <sip:alias2@host2.example.com>\r\n"
        b"Contact: <sip:alias3@host3.example.com>\r\n"
        b"CSeq: 29344 RE%47IST%45R\r\n"
        b"l: 0\r\n"
        b"\r\n"
    )
    message = request(data)
    assert message.method == "RE%47IST%45R"  # an unknown method, not REGISTER
    assert len(message.headers.get_all("Contact")) == 3
    assert parse_name_addr(message.headers.get("To") or "") == NameAddr(
        "sip:resource@example.com", "%Z%45"
    )


def test_rfc4475_lwsdisp_no_lws_between_display_name_and_angle() -> None:
    data = (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"To: sip:user@example.com\r\n"
        b"From: caller<sip:caller@example.com>;tag=323\r\n"
        b"Max-Forwards: 70\r\n"
        b"Call-ID: lwsdisp.1234abcd@funky.example.com\r\n"
        b"CSeq: 60 OPTIONS\r\n"
        b"Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw\r\n"
        b"l: 0\r\n"
        b"\r\n"
    )
    message = request(data)
    assert parse_name_addr(message.headers.get("From") or "") == NameAddr(
        "sip:caller@example.com", "caller", {"tag": "323"}
    )


def test_rfc4475_longreq_long_values_in_header_fields() -> None:
    really = "really" * 70
    to_tag = "unknowntag" + "abcdefghijklmnopqrstuvwxyz" * 20
    param = "verylonglongparametervalue" + "value" * 60
    vias = b"".join(
        b"%s: SIP/2.0/TCP sip%d.example.com\r\n" % (name, n)
        for n, name in zip(range(33, 0, -1), [b"Via", b"v", b"V"] * 11, strict=True)
    )
    data = (
        b"INVITE sip:user@example.com SIP/2.0\r\n"
        b'To: "I have a user name of ' + b"extreme" * 40 + b' proportion"'
        b"<sip:user@example.com:6000;unknownparam1="
        + param.encode()
        + b">;tag="
        + to_tag.encode()
        + b"\r\n"
        b"F: sip:"
        + b"amazinglylongcallername" * 20
        + b"@example.net;tag="
        + b"1298" * 50
        + b";unknownheaderparamname"
        + b"name" * 40
        + b"=value\r\n"
        b"Call-ID: longreq.one" + really.encode() + b"longcallid\r\n"
        b"CSeq: 3882340 INVITE\r\n"
        b"Unknown-"
        + b"LongLong" * 20
        + b"-Name: unknown-"
        + b"long" * 100
        + b"-value\r\n"
        + vias
        + b"Max-Forwards: 68\r\n"
        b"Contact: <sip:" + b"amazinglylongcallername" * 20 + b"@host5.example.net>\r\n"
        b"l: 0\r\n"
        b"\r\n"
    )
    message = request(data)
    assert message.headers.get("Call-ID") == f"longreq.one{really}longcallid"
    to = parse_name_addr(message.headers.get("To") or "")
    assert to == NameAddr(
        f"sip:user@example.com:6000;unknownparam1={param}",
        "I have a user name of " + "extreme" * 40 + " proportion",
        {"tag": to_tag},
    )
    hosts = [v.host for v in map(parse_via, message.headers.get_all("Via")) if v]
    assert hosts == [f"sip{n}.example.com" for n in range(33, 0, -1)]
    assert message.headers.get("unknown-" + "longlong" * 20 + "-name") == (
        "unknown-" + "long" * 100 + "-value"
    )


def test_rfc4475_dblreq_extra_trailing_octets_in_a_datagram() -> None:
    register = (
        b"REGISTER sip:example.com SIP/2.0\r\n"
        b"To: sip:j.user@example.com\r\n"
        b"From: sip:j.user@example.com;tag=43251j3j324\r\n"
        b"Max-Forwards: 8\r\n"
        b"I: dblreq.0ha0isndaksdj99sdfafnl3lk233412\r\n"
        b"Contact: sip:j.user@host.example.com\r\n"
        b"CSeq: 8 REGISTER\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )
    invite = (
        b"INVITE sip:joe@example.com SIP/2.0\r\n"
        b"t: sip:joe@example.com\r\n"
        b"From: sip:caller@example.net;tag=141334\r\n"
        b"Max-Forwards: 8\r\n"
        b"Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15\r\n"
        b"CSeq: 8 INVITE\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )
    message = request(register + b"\r\n" + invite)
    assert (message.method, message.body) == ("REGISTER", b"")
    assert message.headers.get("Call-ID") == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"


def test_rfc4475_semiuri_semicolons_in_the_user_part() -> None:
    data = (
        b"OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0\r\n"
        b"To: sip:j_user@example.com\r\n"
        b"From: sip:caller@example.org;tag=33242\r\n"
        b"Max-Forwards: 3\r\n"
        b"Call-ID: semiuri.0ha0isndaksdj\r\n"
        b"CSeq: 8 OPTIONS\r\n"
        b"Accept: application/sdp, application/pkcs7-mime,\r\n"
        b"        multipart/mixed, multipart/signed,\r\n"
        b"        message/sip, message/sipfrag\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw\r\n"
        b"l: 0\r\n"
        b"\r\n"
    )
    message = request(data)
    assert message.uri == "sip:user;par=u%40example.net@example.com"
    assert message.headers.get("Accept") == (
        "application/sdp, application/pkcs7-mime, multipart/mixed, multipart/signed, "
        "message/sip, message/sipfrag"
    )


def test_rfc4475_unreason_unusual_reason_phrase() -> None:
    data = (
        "SIP/2.0 200 = 2**3 * 5**2 но сто девяносто девять - простое\r\n"
        "Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\r\n"
        "Call-ID: unreason.1234ksdfak3j2erwedfsASdf\r\n"
        "CSeq: 35 INVITE\r\n"
        "From: sip:user@example.com;tag=11141343\r\n"
        "To: sip:user@example.edu;tag=2229\r\n"
        "Content-Length: 3\r\n"
        "Content-Type: application/sdp\r\n"
        "Contact: <sip:user@host198.example.com>\r\n"
        "\r\n"
        "v=0"
    ).encode()
    message = response(data)
    assert (message.code, message.reason, message.body) == (
        200,
        "= 2**3 * 5**2 но сто девяносто девять - простое",
        b"v=0",
    )


def test_rfc4475_escaped_quotes_in_the_display_name() -> None:
    data = options_with(b'Contact: "\\"Joe\\" \\\\ Smith, Jr." <sip:joe@example.com>')
    contact = request(data).headers.get_all("Contact")
    assert contact == ['"\\"Joe\\" \\\\ Smith, Jr." <sip:joe@example.com>']
    assert parse_name_addr(contact[0]) == NameAddr("sip:joe@example.com", '"Joe" \\ Smith, Jr.')


# --- RFC 4475 §3.1.2: invalid messages ---------------------------------------------------


def test_a_header_line_without_a_colon_is_400() -> None:
    assert parse(options_with(b"Subject: a", b"this line has no colon")) == ParseError(
        400, "Malformed header"
    )
    assert parse(options_with(b": empty name")) == ParseError(400, "Malformed header")


def test_rfc4475_clerr_content_length_larger_than_the_message_is_400() -> None:
    data = options_with(b"Content-Type: application/sdp", b"Content-Length: 9999") + b"v=0\r\n"
    assert parse(data) == ParseError(400, "Content-Length larger than message")


def test_rfc4475_ncl_negative_content_length_is_400() -> None:
    assert parse(options_with(b"Content-Length: -999") + b"v=0\r\n") == ParseError(
        400, "Bad Content-Length"
    )


def test_rfc4475_scalar02_huge_content_length_is_400() -> None:
    data = options_with(b"Content-Length: 18446744073709551618") + b"v=0\r\n"
    assert parse(data) == ParseError(400, "Bad Content-Length")


@pytest.mark.parametrize("number", [b"2147483648", b"36893488147419103232", b"99999999999"])
def test_rfc4475_scalar02_cseq_at_or_over_2_31_is_400(number: bytes) -> None:
    data = options_with(cseq=b"CSeq: " + number + b" OPTIONS")
    assert parse(data) == ParseError(400, "Bad CSeq")


def test_cseq_just_under_2_31_is_valid() -> None:
    message = request(options_with(cseq=b"CSeq: 2147483647 OPTIONS"))
    assert parse_cseq(message.headers.get("CSeq") or "") == (2**31 - 1, "OPTIONS")


@pytest.mark.parametrize("value", ["", "1", "INVITE", "-1 INVITE", "1 INV ITE", "1 <x>"])
def test_parse_cseq_refuses(value: str) -> None:
    assert parse_cseq(value) is None


def test_rfc4475_quotbal_unterminated_display_name() -> None:
    data = options_with(b'Contact: "Bell, Alexander <sip:a.g.bell@bell-tel.com>;tag=43')
    contact = request(data).headers.get("Contact") or ""
    assert parse_name_addr(contact) is None


def test_rfc4475_ltgtruri_angle_brackets_around_the_request_uri_is_400() -> None:
    data = OPTIONS.replace(b"sip:101@example.com SIP", b"<sip:101@example.com> SIP", 1)
    assert parse(data) == ParseError(400, "Request-URI in angle brackets")


def test_rfc4475_badvers_sip_7_is_505() -> None:
    assert parse(OPTIONS.replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1)) == ParseError(
        505, "Version Not Supported"
    )
    status = b"SIP/7.0 200 OK\r\n" + REQUIRED + b"CSeq: 1 OPTIONS\r\n\r\n"
    assert parse(status) == ParseError(505, "Version Not Supported")


@pytest.mark.parametrize(
    "line",
    [b"OPTIONS sip:101@example.com", b"OPTIONS  sip:x SIP/2.0", b"OPTIONS sip:x SIP/2.0 ", b""],
)
def test_a_malformed_start_line_is_400(line: bytes) -> None:
    data = line + OPTIONS[OPTIONS.index(b"\r\n") :]
    assert parse(data) == ParseError(400, "Malformed start line")


@pytest.mark.parametrize("name", ["Via", "From", "To", "Call-ID", "CSeq"])
def test_each_missing_required_header_is_400(name: str) -> None:
    lines = [line for line in OPTIONS.split(b"\r\n") if not line.startswith(name.encode())]
    assert parse(b"\r\n".join(lines)) == ParseError(400, f"Missing {name}")
    response_lines = [b"SIP/2.0 200 OK", *lines[1:]]
    assert parse(b"\r\n".join(response_lines)) == ParseError(400, f"Missing {name}")


def test_rfc4475_mismatch01_cseq_method_mismatch_is_400() -> None:
    assert parse(options_with(cseq=b"CSeq: 8 INVITE")) == ParseError(
        400, "CSeq method does not match"
    )


def test_a_response_cseq_names_the_request_method() -> None:
    data = b"SIP/2.0 200 OK\r\n" + REQUIRED + b"CSeq: 8 INVITE\r\nl: 0\r\n\r\n"
    assert response(data).code == 200


# --- the parts a UA reads ----------------------------------------------------------------


def test_escape_user_percent_encodes_what_is_not_safe() -> None:
    assert escape_user('# "<%é') == "%23%20%22%3C%25%C3%A9"
    unreserved = "azAZ09-_.!~*'()"
    assert escape_user(unreserved + "&=+$,;?/") == unreserved + "&=+$,;?/"
    assert escape_user("door 1") == "door%201"


def test_parse_via_with_received_rport_and_branch() -> None:
    value = "SIP/2.0/udp 192.0.2.1:5062;received=203.0.113.9;rport=40123;branch=z9hG4bKa"
    assert parse_via(value) == Via(
        "UDP",
        "192.0.2.1",
        5062,
        {"received": "203.0.113.9", "rport": "40123", "branch": "z9hG4bKa"},
    )


def test_parse_via_with_an_ipv6_host() -> None:
    assert parse_via("SIP/2.0/TLS [2001:db8::1]:5061;branch=z9hG4bKb;rport") == Via(
        "TLS", "[2001:db8::1]", 5061, {"branch": "z9hG4bKb", "rport": ""}
    )
    assert parse_via("SIP/2.0/TCP [2001:db8::1];branch=z9hG4bKc") == Via(
        "TCP", "[2001:db8::1]", None, {"branch": "z9hG4bKc"}
    )


@pytest.mark.parametrize("value", ["", "SIP/2.0/UDP", "HTTP/1.1/TCP host", "SIP/2.0 host"])
def test_parse_via_refuses(value: str) -> None:
    assert parse_via(value) is None


def test_parse_name_addr_forms() -> None:
    assert parse_name_addr("<sip:101@example.com>") == NameAddr("sip:101@example.com")
    assert parse_name_addr("sip:101@example.com;tag=abc") == NameAddr(
        "sip:101@example.com", "", {"tag": "abc"}
    )
    assert parse_name_addr("Door Phone <sip:101@example.com>;expires=60") == NameAddr(
        "sip:101@example.com", "Door Phone", {"expires": "60"}
    )
    assert parse_name_addr('"Door \\"A\\"" <sips:101@example.com;transport=tls>;tag=x') == (
        NameAddr("sips:101@example.com;transport=tls", 'Door "A"', {"tag": "x"})
    )


def test_parse_name_addr_with_a_sip_instance() -> None:
    value = (
        "<sip:101@192.0.2.4:5060;transport=tcp>;expires=3600;"
        '+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>";reg-id=1'
    )
    assert parse_name_addr(value) == NameAddr(
        "sip:101@192.0.2.4:5060;transport=tcp",
        "",
        {
            "expires": "3600",
            "+sip.instance": "<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>",
            "reg-id": "1",
        },
    )


def test_parse_name_addr_with_angle_brackets_inside_the_quoted_display() -> None:
    assert parse_name_addr('"Gate <A>, main" <sip:gate@example.com>;tag=1') == NameAddr(
        "sip:gate@example.com", "Gate <A>, main", {"tag": "1"}
    )


@pytest.mark.parametrize(
    "value",
    ["", "<>", "<sip:a@b", '"a <sip:a@b>', '"a\\" <sip:a@b>', '"a" junk <sip:a@b>', ";tag=1"],
)
def test_parse_name_addr_refuses(value: str) -> None:
    assert parse_name_addr(value) is None


def test_parse_params() -> None:
    assert parse_params(';A=1;b; c = "x;y" ;;') == {"a": "1", "b": "", "c": "x;y"}


def test_quote_and_unquote_round_trip() -> None:
    for text in ['a"b\\c', "", "plain", '"']:
        assert unquote(quote(text)) == text
    assert quote('a"b\\c') == '"a\\"b\\\\c"'


# --- building ----------------------------------------------------------------------------


def test_a_built_request_parses_back_to_itself() -> None:
    sent = Request(
        "MESSAGE",
        "sip:101@example.com",
        Headers(
            (
                ("Via", "SIP/2.0/TCP 192.0.2.4:5060;branch=z9hG4bK1;rport"),
                ("Max-Forwards", "70"),
                ("From", '"Door" <sip:100@example.com>;tag=a'),
                ("To", "<sip:101@example.com>"),
                ("Call-ID", "c1@192.0.2.4"),
                ("CSeq", "2 MESSAGE"),
                ("Content-Type", "text/plain"),
            )
        ),
        "ring é".encode(),
    )
    data = request_bytes(sent)
    assert data == (
        b"MESSAGE sip:101@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP 192.0.2.4:5060;branch=z9hG4bK1;rport\r\n"
        b"Max-Forwards: 70\r\n"
        b'From: "Door" <sip:100@example.com>;tag=a\r\n'
        b"To: <sip:101@example.com>\r\n"
        b"Call-ID: c1@192.0.2.4\r\n"
        b"CSeq: 2 MESSAGE\r\n"
        b"Content-Type: text/plain\r\n"
        b"Content-Length: 7\r\n"
        b"\r\n"
        b"ring \xc3\xa9"
    )
    assert parse(data, stream=True) == Request(
        sent.method,
        sent.uri,
        Headers((*sent.headers.fields, ("Content-Length", "7"))),
        sent.body,
    )


def test_build_computes_content_length_whatever_the_headers_say() -> None:
    assert build("X", [("Content-Length", "99"), ("content-length", "98"), ("l", "97")]) == (
        b"X\r\nContent-Length: 0\r\n\r\n"
    )
    assert build("X", [], b"abc") == b"X\r\nContent-Length: 3\r\n\r\nabc"


def test_a_built_response_parses_back() -> None:
    received = request(OPTIONS)
    answer = response_to(received, 200, "OK", to_tag="t1", extra=[("Allow", "INVITE, ACK")])
    assert parse(response_bytes(answer), stream=True) == Response(
        200, "OK", Headers((*answer.headers.fields, ("Content-Length", "0")))
    )


def test_response_to_copies_the_dialog_headers_and_adds_a_to_tag() -> None:
    received = request(
        b"INVITE sip:101@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKu\r\n"
        b"Max-Forwards: 69\r\n"
        b"From: <sip:100@example.com>;tag=f\r\n"
        b"To: <sip:101@example.com>\r\n"
        b"Call-ID: c2\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Contact: <sip:100@192.0.2.1>\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert response_to(received, 180, "Ringing", to_tag="t9", extra=[("Server", "x")]) == (
        Response(
            180,
            "Ringing",
            Headers(
                (
                    ("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp"),
                    ("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKu"),
                    ("From", "<sip:100@example.com>;tag=f"),
                    ("To", "<sip:101@example.com>;tag=t9"),
                    ("Call-ID", "c2"),
                    ("CSeq", "1 INVITE"),
                    ("Server", "x"),
                )
            ),
        )
    )
    assert response_to(received, 100, "Trying").headers.get("To") == "<sip:101@example.com>"


def test_response_to_keeps_an_existing_to_tag() -> None:
    received = request(
        options_with().replace(b"<sip:101@example.com>\r\n", b"<sip:1@e>;tag=z\r\n")
    )
    assert response_to(received, 200, "OK", to_tag="new").headers.get("To") == "<sip:1@e>;tag=z"


def test_the_trace_redacts_credentials_and_srtp_keys_and_escapes_control_characters() -> None:
    """CONTRACT §6.9: an SDES key is a secret like the password; a value from the wire
    cannot make a line of its own or reach a terminal as an escape sequence."""
    sdp = (
        b"v=0\r\nm=audio 4000 RTP/SAVP 0\r\n"
        b"a=crypto:1 AES_CM_128_HMAC_SHA1_80"
        b" inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4\r\n"
        b"a=crypto:2 AES_CM_128_HMAC_SHA1_32 INLINE:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj\r\n"
    )
    message = (
        b"INVITE sip:101@example.com SIP/2.0\r\n"
        b"From: <sip:x@e.test>\x1b[2J\rforged;tag=1\r\n"
        b'Proxy-Authorization: Digest username="101", response="0123"\r\n\r\n' + sdp
    )
    assert redacted(message).split("\n") == [
        "INVITE sip:101@example.com SIP/2.0",
        "From: <sip:x@e.test>\\x1b[2J\\rforged;tag=1",
        "Proxy-Authorization: <redacted>",
        "",
        "v=0",
        "m=audio 4000 RTP/SAVP 0",
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:<redacted>",
        "a=crypto:2 AES_CM_128_HMAC_SHA1_32 INLINE:<redacted>",
    ]


def test_the_trace_redacts_our_contacts_token_wherever_it_stands() -> None:
    """§6.9: the token lets a registrar's INVITE in; a trace that held it would let a
    reader of the log forge one. No token given: nothing replaced."""
    message = (
        b"INVITE sip:101-9f3a0c1d2e4b@192.0.2.9:5060 SIP/2.0\r\n"
        b"Contact: <sip:101-9f3a0c1d2e4b@192.0.2.9:5060;transport=tcp>\r\n\r\n"
    )
    assert redacted(message, "9f3a0c1d2e4b").split("\n") == [
        "INVITE sip:101-<token>@192.0.2.9:5060 SIP/2.0",
        "Contact: <sip:101-<token>@192.0.2.9:5060;transport=tcp>",
    ]
    assert redacted(message).split("\n")[0] == "INVITE sip:101-9f3a0c1d2e4b@192.0.2.9:5060 SIP/2.0"
