"""The answers made once and kept (error responses, answer heads, rejections) are byte for
byte the ones made afresh, for every message of the contract."""

import json

import pytest

from intercom_sip import errors
from intercom_sip.api import h1, http
from tests.test_validation import ABSENT, INVALID_VALUES, ORDER, WRONG_TYPES

FIXED = sorted(
    value for name, value in vars(errors).items() if name.isupper() and isinstance(value, str)
)
MESSAGES = FIXED + sorted(
    {param.values[1] for param in ABSENT + WRONG_TYPES + INVALID_VALUES + ORDER}
)
STATUSES = (400, 401, 404, 405, 409, 413, 421, 429, 431, 500, 501, 503, 505)


def fresh_error(status: int, message: str) -> http.HttpResponse:
    """An error answer made the slow way: encoded now, its headers written out."""
    body = json.dumps({"error": message}).encode()
    headers = (
        (b"content-type", b"application/json"),
        (b"cache-control", b"no-store"),
        (b"content-length", str(len(body)).encode()),
    )
    return http.HttpResponse(status, body, headers)


def test_every_fixed_message_is_known() -> None:
    assert "Wrong JSON body" in FIXED and len(FIXED) >= 20
    assert len(MESSAGES) > 50


@pytest.mark.parametrize("message", MESSAGES)
def test_a_kept_error_answer_is_the_fresh_one(message: str) -> None:
    for status in STATUSES:
        kept = http.error(status, message)
        assert kept == fresh_error(status, message)
        assert http.error(status, message) is kept  # made once


@pytest.mark.parametrize("message", MESSAGES[::5])
@pytest.mark.parametrize("version", ["1.1", "1.0"])
@pytest.mark.parametrize("keep_alive", [True, False])
def test_a_kept_head_is_the_fresh_one(message: str, version: str, keep_alive: bool) -> None:
    answer = http.error(400, message)
    made = [
        h1.answer_head(answer.status, answer.headers, version, keep_alive, answer.body)
        for _ in range(2)
    ]
    fresh = h1._answer_head(answer.status, answer.headers, version, keep_alive, answer.body)
    assert made[0] == made[1] == fresh
    assert fresh is not None
    head, framing = fresh
    length = str(len(answer.body)).encode()
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n")
    assert b"\r\ncontent-length: " + length + b"\r\n" in head
    assert (framing.chunked, framing.remaining) == (False, len(answer.body))
