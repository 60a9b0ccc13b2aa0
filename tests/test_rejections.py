"""The rejections kept by their bytes: answered as the slow path answers, bounded, and
forgotten when the stored settings change."""

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import pytest

from intercom_sip.contract import jsonbody
from intercom_sip.contract.fields import FACTORY
from intercom_sip.contract.rejections import MAX_BODY, MAX_KEPT, NOT_JSON, Rejections
from intercom_sip.contract.settings import Settings
from intercom_sip.contract.validation import Invalid, switch, validate
from tests.conftest import Rig
from tests.test_validation import ABSENT, BASE, INVALID_VALUES, ORDER, SETTINGS, WRONG_TYPES

STORED = validate(BASE, FACTORY)
assert isinstance(STORED, Settings)
CASES = [
    pytest.param(json.dumps(param.values[0]).encode(), param.values[1], id=param.id)
    for param in ABSENT + WRONG_TYPES + INVALID_VALUES + ORDER
] + [pytest.param(b"[1, 2]", NOT_JSON.message, id="not-an-object")]


class Counting:
    """The rules, counting the bodies they are asked about."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, body: Mapping[str, Any], stored: Settings) -> Settings | Invalid:
        self.calls += 1
        return validate(body, stored)


def slow(raw: bytes, stored: Settings = STORED) -> Settings | Invalid:
    """The answer as made before any was kept: parse, then every rule."""
    body = jsonbody.parse_object(raw)
    return NOT_JSON if body is None else validate(body, stored)


@pytest.mark.parametrize(("raw", "message"), CASES)
def test_a_kept_rejection_is_the_slow_paths_answer(raw: bytes, message: str) -> None:
    rejections, rules = Rejections(), Counting()
    first = rejections.judge(raw, rules, STORED)
    again = rejections.judge(raw, rules, STORED)
    assert first == again == slow(raw) == Invalid(message)
    assert first.message == again.message == message
    assert rules.calls == (0 if first is NOT_JSON else 1)  # the second was not judged again
    assert len(rejections) == 1


def test_a_valid_body_is_never_kept() -> None:
    rejections = Rejections()
    raw = json.dumps({**BASE, "timeout": 300}).encode()
    assert rejections.judge(raw, validate, STORED) == slow(raw)
    assert len(rejections) == 0


def test_the_rules_are_part_of_the_key() -> None:
    rejections = Rejections()
    raw = json.dumps(BASE).encode()  # a settings body: no `sip_enable`
    refused = rejections.judge(raw, switch, STORED)
    assert isinstance(refused, Invalid)
    assert rejections.judge(raw, validate, STORED) == STORED  # not the switch's answer


def test_a_new_stored_settings_forgets_every_rejection() -> None:
    rejections = Rejections()
    raw = json.dumps({**BASE, "password": "WebPass", "user": "102"}).encode()
    assert isinstance(rejections.judge(raw, validate, STORED), Invalid)
    # The same body is right against settings that hold no password to keep: a new
    # stored value must not be answered by the old one's rejection.
    other = dataclasses.replace(STORED, user="102", password="secret1")
    assert rejections.judge(raw, validate, other) == slow(raw, other)
    assert isinstance(slow(raw, other), Settings)
    assert len(rejections) == 0


def test_at_most_max_kept_rejections_oldest_out() -> None:
    rejections, rules = Rejections(), Counting()
    bodies = [json.dumps({**BASE, "timeout": 121 + n}).encode() for n in range(3 * MAX_KEPT)]
    for raw in bodies:
        rejections.judge(raw, rules, STORED)
        assert len(rejections) <= MAX_KEPT
    assert (len(rejections), rules.calls) == (MAX_KEPT, 3 * MAX_KEPT)
    rejections.judge(bodies[-1], rules, STORED)  # the newest: kept
    assert rules.calls == 3 * MAX_KEPT
    rejections.judge(bodies[0], rules, STORED)  # the oldest: gone, judged again
    assert (len(rejections), rules.calls) == (MAX_KEPT, 3 * MAX_KEPT + 1)


def test_a_long_body_is_not_kept() -> None:
    rejections, rules = Rejections(), Counting()
    raw = json.dumps({**BASE, "timeout": 121, "pad": "x" * MAX_BODY}).encode()
    for _ in range(2):
        assert rejections.judge(raw, rules, STORED) == slow(raw)
    assert (len(rejections), rules.calls) == (0, 2)


def test_repr_never_shows_a_body() -> None:
    rejections = Rejections()
    rejections.judge(
        json.dumps({**BASE, "password": "hunter2x", "timeout": 1}).encode(), validate, STORED
    )
    assert repr(rejections) == "<Rejections: 1 kept>"


@pytest.mark.parametrize(("raw", "message"), CASES[::7])
def test_the_app_answers_a_rejection_again_byte_for_byte(
    rig: Rig, raw: bytes, message: str
) -> None:
    token = rig.login()
    assert rig.client.post(SETTINGS, BASE, token)[0] == 200
    answers: list[tuple[int, Any, list[tuple[bytes, bytes]]]] = []
    for _ in range(2):
        status, body = rig.client.post(SETTINGS, raw, token)
        answers.append((status, body, rig.client.last_headers))
    assert (
        answers[0]
        == answers[1]
        == (
            400,
            {"error": message},
            [
                (b"content-type", b"application/json"),
                (b"cache-control", b"no-store"),
                (b"content-length", str(len(json.dumps({"error": message}))).encode()),
            ],
        )
    )
