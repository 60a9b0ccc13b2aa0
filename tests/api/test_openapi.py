"""The OpenAPI document is valid, and true: its schemas accept what the service accepts."""

import re
from collections import Counter
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi

from intercom_sip.api import openapi
from intercom_sip.contract.fields import FACTORY, HOST_PATTERN, PROXY_PATTERN, SIPS_PROXY_PATTERN
from intercom_sip.contract.settings import Settings, to_view
from intercom_sip.contract.validation import validate
from intercom_sip.sip import syntax
from tests.test_validation import BASE

DOCUMENT = openapi.build()


def validator(name: str) -> Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": DOCUMENT["components"]}
    return Draft202012Validator(schema)


REQUEST = validator("SipSettings")
VIEW = validator("SipSettingsView")


def test_the_document_is_valid_openapi() -> None:
    validate_openapi(DOCUMENT)


def test_operation_ids_are_unique() -> None:
    ids = Counter(op["operationId"] for ops in DOCUMENT["paths"].values() for op in ops.values())
    assert [name for name, count in ids.items() if count > 1] == []


def test_factory_settings_fit_both_schemas() -> None:
    view = to_view(FACTORY)
    assert list(VIEW.iter_errors(view)) == []
    body = {k: v for k, v in view.items() if k != "user_agent"}
    assert list(REQUEST.iter_errors(body)) == []


@pytest.mark.parametrize("name", ["proxy", "realm", "user", "password"])
def test_empty_account_fields_only_while_disabled(name: str) -> None:
    assert not REQUEST.is_valid({**BASE, name: ""})
    assert REQUEST.is_valid({**BASE, "enable": False, name: ""})


def test_stun_port_zero_only_without_stun() -> None:
    assert not REQUEST.is_valid({**BASE, "stun": {"ip": "stun.example.com", "port": 0}})
    assert REQUEST.is_valid({**BASE, "stun": {"ip": "", "port": 0}})


def test_sips_needs_tls() -> None:
    assert not REQUEST.is_valid({**BASE, "proxy": "sips:pbx.example.com"})
    assert REQUEST.is_valid({**BASE, "proxy": "sips:pbx.example.com", "transport": "tls"})
    assert REQUEST.is_valid({**BASE, "proxy": "sips:5061"})  # the host "sips", port 5061


# --- the patterns say what syntax.py says ----------------------------------------------------

HOSTISH = st.text(alphabet="ab0129.-:sip_ \n", max_size=24)
EDGES = [
    "",
    "a",
    "1.2.3.4",
    "1.2.3",
    "256.1.1.1",
    "01.2.3.4",
    "a-",
    "-a",
    "a..b",
    "a.",
    "a\n",
    "a" * 63,
    "a" * 64,
    ".".join(["a" * 63] * 4)[:253],
    ".".join(["a" * 63] * 4)[:254],
    "sip:5060",
    "sips:5061",
    "sip:sip:5060",
    "sips:1.2.3.4:65535",
    "sip:a:65536",
    "sip:a:0",
    "sip:a:05060",
    "SIP:a",
    "a:1:2",
]


def search(pattern: str, text: str) -> bool:
    return re.search(pattern, text) is not None


@given(HOSTISH)
@settings(max_examples=1500)
def test_host_pattern_is_the_host_rule(text: str) -> None:
    assert search(HOST_PATTERN, text) == syntax.is_host(text)


@given(HOSTISH)
@settings(max_examples=1500)
def test_proxy_patterns_are_the_proxy_rule(text: str) -> None:
    parsed = syntax.parse_proxy(text)
    assert search(PROXY_PATTERN, text) == (parsed is not None)
    assert search(SIPS_PROXY_PATTERN, text) == (parsed is not None and parsed[0] == "sips")


@pytest.mark.parametrize("text", EDGES)
def test_patterns_at_the_edges(text: str) -> None:
    parsed = syntax.parse_proxy(text)
    assert search(HOST_PATTERN, text) == syntax.is_host(text)
    assert search(PROXY_PATTERN, text) == (parsed is not None)
    assert search(SIPS_PROXY_PATTERN, text) == (parsed is not None and parsed[0] == "sips")


# --- the request schema accepts exactly what the service accepts -----------------------------

FIELD_VALUES: dict[str, Any] = {
    "enable": st.booleans(),
    "proxy": st.sampled_from(["", "sip:pbx.example.com", "sips:pbx.example.com:5061", "x_y"]),
    "realm": st.sampled_from(["", "example.com", "1.2.3", "a" * 254]),
    "user": st.sampled_from(["", "101", "a" * 31, "a" * 32, "a\tb"]),
    "password": st.sampled_from(["", "secret1", "12345", "x" * 31, "x" * 32, "p'ss word"]),
    "transport": st.sampled_from(["udp", "tcp", "tls", "UDP"]),
    "user_id": st.sampled_from(["", "auth1", "a" * 32]),
    "is_enable_ring_code": st.booleans(),
    "timeout": st.sampled_from([120, 1800, 121, 0]),
    "registration_interval": st.sampled_from([29, 30, 900, 901]),
    "stun": st.fixed_dictionaries(
        {
            "ip": st.sampled_from(["", "stun.example.com", "1.2.3.4", "-x"]),
            "port": st.sampled_from([0, 1, 65535, 65536]),
        }
    ),
}
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=5,
)


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name, values in FIELD_VALUES.items():
        choice = draw(st.integers(0, 9))
        if choice == 0:
            continue  # left out
        body[name] = draw(ANY_JSON if choice == 1 else values)
    return body


@given(bodies())
@settings(max_examples=1500)
@example({k: v for k, v in to_view(FACTORY).items() if k != "user_agent"})
@example({**BASE, "proxy": ""})
def test_request_schema_accepts_what_the_service_accepts(body: dict[str, Any]) -> None:
    """With nothing stored (the document knows no stored state; WebPass needs one)."""
    accepted = isinstance(validate(body, FACTORY), Settings)
    assert REQUEST.is_valid(body) == accepted, validate(body, FACTORY)
