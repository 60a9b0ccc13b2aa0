"""Contract §3: every field, absent, of every wrong type, and at and beyond each bound.

Rejections go through the whole app and must leave the store untouched.
"""

import copy
import json
from typing import Any

import pytest

from intercom_sip import errors
from intercom_sip.contract.fields import FACTORY, FIELDS, Kind
from intercom_sip.contract.settings import Settings
from intercom_sip.contract.validation import Invalid, from_record, to_record, validate
from tests.conftest import Rig

SETTINGS = "/api/v1/device/sip/settings"
CHARSET = 'letters, digits, space and ~`!@#$%^&;*()_-+={[}]|"<,>.?/'
HOST = "must be an IPv4 address or a host name"
PROXY = f"{HOST}, optionally with sip: or sips: before it and :port (1 to 65535) after it"
NOT_EMPTY = "must not be empty when enable is true"

BASE: dict[str, Any] = {
    "enable": True,
    "proxy": "sip:pbx.example.com:5060",
    "realm": "example.com",
    "user": "101",
    "password": "secret1",
    "transport": "udp",
    "user_id": "",
    "is_enable_ring_code": False,
    "timeout": 120,
    "registration_interval": 60,
    "stun": {"ip": "stun.example.com", "port": 3478},
}

# One sample of every JSON type; each field is sent every one that is not its own.
SAMPLES: dict[str, Any] = {
    "null": None,
    "true": True,
    "false": False,
    "zero": 0,
    "one": 1,
    "int": 120,
    "float": 120.0,
    "fraction": 1.5,
    "string": "120",
    "empty": "",
    "array": [],
    "object": {},
}
OWN_KIND = {
    Kind.BOOLEAN: {"true", "false"},
    Kind.INTEGER: {"zero", "one", "int"},
    Kind.STRING: {"string", "empty"},
    Kind.OBJECT: {"object"},
}


def with_value(name: str, value: Any, base: dict[str, Any] = BASE) -> dict[str, Any]:
    body = copy.deepcopy(base)
    *parents, last = name.split(".")
    target = body
    for parent in parents:
        target = target[parent]
    target[last] = value
    return body


def without(name: str, base: dict[str, Any] = BASE) -> dict[str, Any]:
    body = copy.deepcopy(base)
    *parents, last = name.split(".")
    target = body
    for parent in parents:
        target = target[parent]
    del target[last]
    return body


def label(size: int) -> str:
    return "a" * size


ABSENT = [
    pytest.param(without(f.name), errors.no_value(f.name), id=f"absent-{f.name}")
    for f in FIELDS
    if f.required
]

WRONG_TYPES = [
    pytest.param(with_value(f.name, value), errors.wrong_type(f.name), id=f"type-{f.name}-{key}")
    for f in FIELDS
    for key, value in SAMPLES.items()
    if key not in OWN_KIND[f.kind]
]


def bad(name: str, value: Any, reason: str, base: dict[str, Any] = BASE) -> Any:
    return pytest.param(
        with_value(name, value, base), errors.invalid(name, reason), id=f"{name}={value!r}"[:60]
    )


INVALID_VALUES = [
    # proxy: host, scheme, port
    bad("proxy", "", NOT_EMPTY),
    bad("proxy", "pbx.example.com:0", PROXY),
    bad("proxy", "pbx.example.com:65536", PROXY),
    bad("proxy", "pbx.example.com:123456", PROXY),
    bad("proxy", "pbx.example.com:05060", PROXY),
    bad("proxy", "pbx.example.com:", PROXY),
    bad("proxy", "pbx.example.com:5060x", PROXY),
    bad("proxy", "pbx.example.com:5060:5060", PROXY),
    bad("proxy", "SIP:pbx.example.com", PROXY),
    bad("proxy", "Sips:pbx.example.com", PROXY),
    bad("proxy", "sip:", PROXY),
    bad("proxy", "http:pbx.example.com", PROXY),
    bad("proxy", "sip:101@pbx.example.com", PROXY),
    bad("proxy", "sip:sip:pbx.example.com", PROXY),
    bad("proxy", " pbx.example.com", PROXY),
    bad("proxy", "[::1]", PROXY),
    bad("proxy", "::1", PROXY),
    bad("proxy", "1.2.3", PROXY),
    bad("proxy", "256.1.1.1", PROXY),
    bad("proxy", "01.2.3.4", PROXY),
    bad("proxy", "1.2.3.4.5", PROXY),
    bad("proxy", "-pbx.example.com", PROXY),
    bad("proxy", "pbx-.example.com", PROXY),
    bad("proxy", "pbx..example.com", PROXY),
    bad("proxy", "pbx.example.com.", PROXY),
    bad("proxy", "pbx_1.example.com", PROXY),
    bad("proxy", "pbx.ex\u00e4mple.com", PROXY),
    bad("proxy", label(64) + ".com", PROXY),
    bad("proxy", ".".join([label(63)] * 4), PROXY),  # 255 characters
    bad("proxy", ".".join([label(63)] * 3 + [label(62)]), PROXY),  # 254 characters
    # realm: a host only
    bad("realm", "", NOT_EMPTY),
    bad("realm", "sip:example.com", f"must be {HOST.removeprefix('must be ')}"),
    bad("realm", "example.com:5060", HOST),
    bad("realm", "example.com.", HOST),
    bad("realm", "1.2.3", HOST),
    bad("realm", label(64), HOST),
    # user: 1..31 SIP characters
    bad("user", "", NOT_EMPTY),
    bad("user", "a" * 32, f"must be 1 to 31 characters: {CHARSET}"),
    *[
        bad("user", f"a{char}b", f"must be 1 to 31 characters: {CHARSET}")
        for char in ("\t", "\n", "\r", "'", ":", "\\", "\u00e9", "\x00", "\u3000")
    ],
    # password: 6..31, or the placeholder under its conditions
    bad("password", "", NOT_EMPTY),
    bad("password", "12345", f"must be 6 to 31 characters: {CHARSET}"),
    bad("password", "a" * 32, f"must be 6 to 31 characters: {CHARSET}"),
    bad("password", "secret\n1", f"must be 6 to 31 characters: {CHARSET}"),
    bad("password", "secret:1", f"must be 6 to 31 characters: {CHARSET}"),
    # transport
    *[
        bad("transport", value, "must be one of udp, tcp, tls")
        for value in ("UDP", "Tls", "sctp", "ws", "", " udp")
    ],
    bad(
        "transport",
        "udp",
        "must be tls when proxy starts with sips:",
        with_value("proxy", "sips:pbx.example.com"),
    ),
    bad(
        "transport",
        "tcp",
        "must be tls when proxy starts with sips:",
        with_value("proxy", "sips:pbx.example.com:5061"),
    ),
    # user_id: 0..31
    bad("user_id", "a" * 32, f"must be 0 to 31 characters: {CHARSET}"),
    bad("user_id", "a\tb", f"must be 0 to 31 characters: {CHARSET}"),
    # timeout: one of five values
    *[
        bad("timeout", value, "must be one of 120, 300, 600, 1200, 1800")
        for value in (0, -120, 119, 121, 299, 1801, 3600, 2**63)
    ],
    # registration_interval: 30..900
    *[
        bad("registration_interval", value, "must be from 30 to 900")
        for value in (29, 901, 0, -1, 10**9)
    ],
    # stun
    bad("stun.ip", "stun..example.com", f"{HOST}, or empty for none"),
    bad("stun.ip", "sip:stun.example.com", f"{HOST}, or empty for none"),
    bad("stun.ip", "stun.example.com:3478", f"{HOST}, or empty for none"),
    bad("stun.ip", "::1", f"{HOST}, or empty for none"),
    bad("stun.port", 0, "must be from 1 to 65535"),
    bad("stun.port", 65536, "must be from 1 to 65535"),
    bad("stun.port", -1, "must be from 1 to 65535"),
    bad(
        "stun.port",
        65536,
        "must be from 0 to 65535 when stun.ip is empty",
        with_value("stun.ip", ""),
    ),
    bad(
        "stun.port", -1, "must be from 0 to 65535 when stun.ip is empty", with_value("stun.ip", "")
    ),
]

ORDER = [
    # the first failure in §3.1's order is the answer
    pytest.param({**without("timeout"), "user": 5}, errors.wrong_type("user"), id="order-user"),
    pytest.param(
        {**BASE, "timeout": 1, "stun": []},
        errors.invalid("timeout", "must be one of 120, 300, 600, 1200, 1800"),
        id="order-timeout",
    ),
    pytest.param(
        {**with_value("stun.port", "x"), "registration_interval": 1},
        errors.invalid("registration_interval", "must be from 30 to 900"),
        id="order-interval",
    ),
    pytest.param(
        with_value("stun.port", True, without("stun.ip")),
        errors.no_value("stun.ip"),
        id="order-stun-ip",
    ),
    pytest.param(
        {**BASE, "transport": None, "proxy": "sips:pbx.example.com"},
        errors.wrong_type("transport"),
        id="order-transport-type",
    ),
]


@pytest.fixture(scope="module")
def seeded(module_rig: Rig) -> tuple[Rig, str, Any]:
    token = module_rig.login()
    status, view = module_rig.client.post(SETTINGS, BASE, token)
    assert status == 200, view
    return module_rig, token, view


@pytest.mark.parametrize(("body", "message"), ABSENT + WRONG_TYPES + INVALID_VALUES + ORDER)
def test_rejected_body_changes_nothing(
    seeded: tuple[Rig, str, Any], body: dict[str, Any], message: str
) -> None:
    rig, token, view = seeded
    stored = rig.store.load_settings()
    assert rig.client.post(SETTINGS, body, token) == (400, {"error": message})
    assert rig.store.load_settings() == stored
    assert rig.client.get(SETTINGS, token) == (200, view)


def test_every_field_is_covered_by_the_table() -> None:
    ids = {p.id for p in INVALID_VALUES}
    for field in FIELDS:
        if field.rule is not None:
            assert any(i.startswith(f"{field.name}=") for i in ids), field.name


ACCEPTED = [
    ("proxy", "pbx.example.com"),
    ("proxy", "sip:pbx.example.com"),
    ("proxy", "192.0.2.1"),
    ("proxy", "0.0.0.0"),
    ("proxy", "255.255.255.255:65535"),
    ("proxy", "pbx:1"),
    ("proxy", "localhost"),
    ("proxy", "sip:5060"),
    ("proxy", "1a.example"),
    ("proxy", label(63) + ".com"),
    ("proxy", ".".join([label(63)] * 3 + [label(61)])),
    ("realm", "192.0.2.1"),
    ("realm", "x"),
    ("realm", "EXAMPLE.com"),
    ("user", "a"),
    ("user", "a" * 31),
    ("user", '~`!@#$%^&;*()_-+={[}]|"<,>.?/ '),
    ("user", '# "<%'),
    ("password", "123456"),
    ("password", "p" * 31),
    ("password", '~`!@#$%^&;*()_-+={[}]|"<,>'),
    ("transport", "tcp"),
    ("transport", "tls"),
    ("user_id", ""),
    ("user_id", "u" * 31),
    ("user_id", "a b"),
    ("is_enable_ring_code", True),
    *[("timeout", value) for value in (120, 300, 600, 1200, 1800)],
    ("registration_interval", 30),
    ("registration_interval", 900),
    ("stun.ip", ""),
    ("stun.ip", "192.0.2.1"),
    ("stun.port", 1),
    ("stun.port", 65535),
]


@pytest.mark.parametrize(("name", "value"), ACCEPTED, ids=[f"{n}={v!r}"[:50] for n, v in ACCEPTED])
def test_valid_values_are_accepted(name: str, value: Any) -> None:
    result = validate(with_value(name, value), FACTORY)
    assert isinstance(result, Settings), result
    attr = name.replace(".", "_")
    assert getattr(result, attr) == value


def test_stun_off_allows_port_zero() -> None:
    result = validate(with_value("stun", {"ip": "", "port": 0}), FACTORY)
    assert isinstance(result, Settings)
    assert (result.stun_ip, result.stun_port) == ("", 0)


def test_sips_with_tls_is_accepted() -> None:
    body = {**BASE, "proxy": "sips:pbx.example.com", "transport": "tls"}
    assert isinstance(validate(body, FACTORY), Settings)


def test_sips_checks_the_stored_transport_when_absent() -> None:
    stored = validate({**BASE, "transport": "tls"}, FACTORY)
    assert isinstance(stored, Settings)
    body = without("transport", {**BASE, "proxy": "sips:pbx.example.com"})
    assert isinstance(validate(body, stored), Settings)
    assert validate(body, FACTORY) == Invalid(
        errors.invalid("transport", "must be tls when proxy starts with sips:")
    )


def test_a_host_named_sips_is_no_scheme() -> None:
    # "sips:5061" is the host "sips" at port 5061, so udp is fine
    result = validate({**BASE, "proxy": "sips:5061"}, FACTORY)
    assert isinstance(result, Settings)


def test_disabled_account_may_be_empty() -> None:
    body = {**BASE, "enable": False, "proxy": "", "realm": "", "user": "", "password": ""}
    result = validate(body, FACTORY)
    assert isinstance(result, Settings)
    assert (result.proxy, result.realm, result.user, result.password) == ("", "", "", "")


def test_factory_settings_post_back_as_they_are() -> None:
    from intercom_sip.contract.settings import to_view

    view = to_view(FACTORY)
    assert validate(view, FACTORY) == FACTORY


def test_absent_optional_fields_keep_stored_values() -> None:
    stored = validate(
        {
            **BASE,
            "transport": "tcp",
            "user_id": "auth1",
            "is_enable_ring_code": True,
            "registration_interval": 300,
        },
        FACTORY,
    )
    assert isinstance(stored, Settings)
    body = {
        k: v
        for k, v in BASE.items()
        if k not in {"transport", "user_id", "is_enable_ring_code", "registration_interval"}
    }
    result = validate(body, stored)
    assert isinstance(result, Settings)
    assert (
        result.transport,
        result.user_id,
        result.is_enable_ring_code,
        result.registration_interval,
    ) == ("tcp", "auth1", True, 300)


@pytest.mark.parametrize(
    ("change", "user_id"),
    [
        ({}, "auth1"),
        ({"password": "other-pass", "timeout": 600, "transport": "tcp"}, "auth1"),
        ({"password": "WebPass"}, "auth1"),
        ({"proxy": "sip:other.example.com"}, ""),
        ({"realm": "other.example.com"}, ""),
        ({"user": "102"}, ""),
        ({"user": "102", "user_id": "auth2"}, "auth2"),
        ({"realm": "other.example.com", "user_id": "auth1"}, "auth1"),
    ],
)
def test_user_id_left_out_is_dropped_with_the_account(
    change: dict[str, Any], user_id: str
) -> None:
    """§3.4: a new account must not authenticate as the previous one's user id."""
    stored = validate({**BASE, "user_id": "auth1"}, FACTORY)
    assert isinstance(stored, Settings)
    body = {k: v for k, v in BASE.items() if k != "user_id"} | change
    result = validate(body, stored)
    assert isinstance(result, Settings)
    assert result.user_id == user_id


PLACEHOLDER_NEEDS_PASSWORD = errors.invalid(
    "password", "must be given again when proxy, realm, user or user_id change"
)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("proxy", "other.example.com"),
        ("realm", "other.example.com"),
        ("user", "102"),
        ("user_id", "auth2"),
    ],
)
def test_placeholder_refused_when_the_account_changes(name: str, value: str) -> None:
    stored = validate(BASE, FACTORY)
    assert isinstance(stored, Settings)
    body = with_value(name, value, with_value("password", "WebPass"))
    assert validate(body, stored) == Invalid(PLACEHOLDER_NEEDS_PASSWORD)


def test_placeholder_keeps_the_stored_password() -> None:
    stored = validate(BASE, FACTORY)
    assert isinstance(stored, Settings)
    result = validate({**with_value("password", "WebPass"), "timeout": 600}, stored)
    assert isinstance(result, Settings)
    assert (result.password, result.timeout) == ("secret1", 600)


def test_placeholder_refused_when_no_password_is_stored() -> None:
    assert validate(with_value("password", "WebPass"), FACTORY) == Invalid(
        errors.invalid("password", "cannot be WebPass: no password is stored")
    )


def test_record_round_trip_keeps_the_password() -> None:
    stored = validate({**BASE, "user": '# "<%'}, FACTORY)
    assert isinstance(stored, Settings)
    record = to_record(stored)
    assert json.loads(record)["password"] == "secret1"
    assert from_record(record) == stored


@pytest.mark.parametrize(
    "record", ["", "{", "[]", '{"enable": true}', json.dumps({**BASE, "password": "WebPass"})]
)
def test_unreadable_records_are_refused(record: str) -> None:
    assert from_record(record) is None


def test_repr_never_shows_the_password() -> None:
    stored = validate(BASE, FACTORY)
    assert "secret1" not in repr(stored)
    assert "secret1" not in str(stored)
