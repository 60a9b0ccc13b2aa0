"""Property tests of the body rules (contract §3.2): any body gets 200, 400 in one of the
contract's forms, or 413; and a 400 changes nothing."""

import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from intercom_sip.contract import jsonbody
from intercom_sip.contract.fields import FACTORY, FIELDS
from intercom_sip.contract.settings import Settings
from intercom_sip.contract.validation import Invalid, switch, validate
from tests.conftest import Rig
from tests.test_validation import BASE

NAME = "`[a-z_.]+`"
FORMS = re.compile(
    f"Wrong JSON body(?:: no value for {NAME}|: value {NAME} was of the wrong type"
    f"|: value {NAME} is invalid: [^\\n]+)?"
)
STORED = validate({**BASE, "user_id": "auth1"}, FACTORY)
assert isinstance(STORED, Settings)

ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    """BASE (or the enable body) with fields left out, replaced, or added."""
    body: dict[str, Any] = dict(draw(st.sampled_from([BASE, {"sip_enable": True}])))
    body["stun"] = dict(BASE["stun"])
    for name in [f.name for f in FIELDS] + ["sip_enable"]:
        action = draw(st.integers(0, 7))
        parent, _, leaf = name.rpartition(".")
        target = body.get(parent) if parent else body
        if not isinstance(target, dict):
            continue
        if action == 0:
            target.pop(leaf or name, None)
        elif action == 1:
            target[leaf or name] = draw(ANY_JSON)
    body.update(draw(st.dictionaries(st.text(max_size=8), ANY_JSON, max_size=2)))
    return body


BODIES = st.one_of(
    st.binary(max_size=200),
    ANY_JSON.map(lambda value: json.dumps(value).encode()),
    near_valid().map(lambda value: json.dumps(value).encode()),
    st.sampled_from([b"[" * 40, b'{"a": 1e999}', b'{"a": NaN}', b'{"a": 1, "a": 2}']),
)


def outcome_is_in_the_contract(result: Settings | Invalid) -> None:
    if isinstance(result, Invalid):
        assert FORMS.fullmatch(result.message), result.message


@given(BODIES)
@settings(max_examples=1500)
def test_any_body_is_settings_or_a_contract_error(raw: bytes) -> None:
    body = jsonbody.parse_object(raw)
    if body is None:
        return  # answered 400 "Wrong JSON body" by the device
    for stored in (FACTORY, STORED):
        outcome_is_in_the_contract(validate(body, stored))
        outcome_is_in_the_contract(switch(body, stored))


LARGE = st.integers(65537, 70000).map(lambda size: b" " * size)


@given(raw=st.one_of(BODIES, LARGE), path=st.sampled_from(["settings", "enable"]))
@settings(max_examples=300)
def test_any_body_through_the_app(module_rig: Rig, raw: bytes, path: str) -> None:
    rig = module_rig
    token = rig.login()
    before = (rig.client.get("/api/v1/device/sip/settings", token), len(rig.store.history()))
    status, answer = rig.client.post(f"/api/v1/device/sip/{path}", raw, token)
    assert status in (200, 400, 413), (status, answer)
    if status == 413:
        assert len(raw) > 65536
        assert answer == {"error": "Request body too large"}
    if status == 400:
        assert FORMS.fullmatch(answer["error"]), answer
    if status != 200:  # a refusal changes nothing
        after = (rig.client.get("/api/v1/device/sip/settings", token), len(rig.store.history()))
        assert after == before
    rig.client.get("/api/v1/logout", token)
