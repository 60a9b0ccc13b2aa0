"""The number rules of `call/dial` (contract §6.3) and the digits of `call/dtmf` (§6.5):
the parser, and the patterns the OpenAPI document carries, which must say the same."""

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from intercom_sip.api import openapi
from intercom_sip.contract.dialing import (
    DTMF_PATTERN,
    NUMBER_PATTERN,
    DialKind,
    DialTarget,
    is_dtmf,
    parse_number,
)

DIGITS = DialKind.DIGITS
URI = DialKind.URI
DIRECT = DialKind.DIRECT


@pytest.mark.parametrize(
    ("number", "target"),
    [
        ("0", DialTarget(DIGITS, "0", None)),
        ("102", DialTarget(DIGITS, "102", None)),
        ("1" * 32, DialTarget(DIGITS, "1" * 32, None)),
        ("sip:102@pbx.example.com", DialTarget(URI, "102", "pbx.example.com")),
        ("sip:door-1@example.com", DialTarget(URI, "door-1", "example.com")),
        ("sip:alice.smith@localhost", DialTarget(URI, "alice.smith", "localhost")),
        ("sip:%2B49@example.com", DialTarget(URI, "%2B49", "example.com")),
        ("sip:+4930123@example.com", DialTarget(URI, "+4930123", "example.com")),
        ("sip:102@192.168.1.20", DialTarget(URI, "102", "192.168.1.20")),
        ("sip:" + "u" * 64 + "@h", DialTarget(URI, "u" * 64, "h")),
        ("sip:192.168.1.20", DialTarget(DIRECT, None, "192.168.1.20")),
        ("sip:0.0.0.0", DialTarget(DIRECT, None, "0.0.0.0")),
        ("sip:255.255.255.255", DialTarget(DIRECT, None, "255.255.255.255")),
    ],
)
def test_numbers_that_dial(number: str, target: DialTarget) -> None:
    assert parse_number(number) == target
    assert re.search(NUMBER_PATTERN, number)


@pytest.mark.parametrize(
    "number",
    [
        "",
        " ",
        "1" * 33,  # more digits than any dial plan
        "102 ",
        " 102",
        "10 2",
        "102\n",
        "-1",
        "+4930123",  # a plus: only inside a URI
        "1.5",
        "١٢٣",  # digits, but not ASCII ones
        "12*",
        "#",
        "sip:",
        "sip:102",  # a user without a host: not an IPv4 address either
        "sip:door",
        "sip:pbx.example.com",  # a direct call needs an address
        "sip:192.168.1",
        "sip:192.168.1.256",
        "sip:01.2.3.4",
        "sip:192.168.1.20:5060",  # direct calls go to 5060
        "sip:102@",
        "sip:@example.com",
        "sip:102@example.com:5060",
        "sip:102@example.com;transport=tcp",
        "sip:102@example.com?subject=x",
        "sip:1;2@example.com",
        "sip:a b@example.com",
        "sip:a@b@example.com",
        "sip:102@-example.com",
        "sip:102@example..com",
        "sip:102@1.2.3",  # digits and dots, yet no address
        "sip:102@[::1]",
        "sip:%zz@example.com",
        "sip:" + "u" * 65 + "@h",
        "sip:102@" + "a" * 64,
        "SIP:102@example.com",
        "sips:102@example.com",
        "tel:102",
        "102@example.com",
        "<sip:102@example.com>",
        "sip:102@example.com\n",
    ],
)
def test_numbers_that_do_not(number: str) -> None:
    assert parse_number(number) is None
    assert not re.search(NUMBER_PATTERN, number)


def test_the_uri_to_call() -> None:
    assert parse_number("102").uri("example.com") == "sip:102@example.com"  # type: ignore[union-attr]
    uri = parse_number("sip:door@pbx.example.net")
    assert uri is not None and uri.uri("example.com") == "sip:door@pbx.example.net"
    direct = parse_number("sip:10.0.0.7")
    assert direct is not None and direct.uri("example.com") == "sip:10.0.0.7"


def test_only_a_direct_call_goes_without_a_registration() -> None:
    needs = {
        text: target.needs_registration
        for text in ("102", "sip:102@example.com", "sip:10.0.0.7")
        if (target := parse_number(text)) is not None
    }
    assert needs == {"102": True, "sip:102@example.com": True, "sip:10.0.0.7": False}


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("1", True),
        ("1#", True),
        ("0123456789*#ABCD", True),
        ("D" * 32, True),
        ("", False),
        ("D" * 33, False),
        ("a", False),
        ("E", False),
        ("1 2", False),
        ("1\n", False),
        ("+", False),
        ("١", False),
    ],
)
def test_dtmf_digits(digits: str, valid: bool) -> None:
    assert is_dtmf(digits) is valid
    assert (re.search(DTMF_PATTERN, digits) is not None) is valid


# --- the document says what the parser says ---------------------------------------------------

NUMBERISH = st.text(alphabet="sip:@.0129ab-%+; \n", max_size=24)


@given(NUMBERISH)
@settings(max_examples=2000)
@example("sip:1.2.3.4")
@example("sip:1@1.2.3.4")
@example("sip:1@1.2.3")
def test_the_number_pattern_is_the_number_rule(text: str) -> None:
    assert (re.search(NUMBER_PATTERN, text) is not None) == (parse_number(text) is not None)


def test_the_document_carries_the_patterns() -> None:
    schemas = openapi.build()["components"]["schemas"]
    assert schemas["Dial"]["properties"]["number"]["pattern"] == NUMBER_PATTERN
    assert schemas["Dtmf"]["properties"]["digits"]["pattern"] == DTMF_PATTERN
