"""Contract §3.2 step 1: anything but a JSON object within the limits is refused."""

import json

import pytest

from intercom_sip.jsonbody import parse_object


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b" ",
        b"null",
        b"[]",
        b'"text"',
        b"120",
        b"{",
        b"{}}",
        b"{'a': 1}",
        b'{"a": 1,}',
        b'{"a": 1, "a": 2}',
        b'{"a": {"b": 1, "b": 1}}',
        b'{"a": [{"x": 1, "x": 1}]}',
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b'{"a": 1e400}',
        b'{"a": -1e400}',
        b'{"a": ' + b"1" * 33 + b"}",
        b'{"a": -' + b"1" * 33 + b"}",
        b'{"a": 1.' + b"1" * 32 + b"}",
        b'{"a": ' + b"1" * 5000 + b"}",
        b'{"a": ' + b"[" * 32 + b"]" * 32 + b"}",
        b"[" * 100000,
        b'{"a": "\xff"}',
        b'{"a": "\xc3"}',
        b"\xef\xbb\xbf{}",
        b'{"a": "line\nbreak"}',
        b'\x00{"a": 1}',
    ],
    ids=lambda raw: repr(raw[:40]),
)
def test_refused(raw: bytes) -> None:
    assert parse_object(raw) is None


def nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"{}", {}),
        (b' \r\n{"a": 1}\n', {"a": 1}),
        (b'{"a": ' + b"1" * 32 + b"}", {"a": int("1" * 32)}),
        (b'{"a": ' + b"[" * 31 + b"]" * 31 + b"}", {"a": nested(31)}),
        (json.dumps({"a": "[" * 50}).encode(), {"a": "[" * 50}),
        (json.dumps({"a": '\\"' + "{" * 40}).encode(), {"a": '\\"' + "{" * 40}),
        (json.dumps({"[" * 40: 1}).encode(), {"[" * 40: 1}),
        (b'{"a": 1e-400}', {"a": 0.0}),
        (b'{"a": "\\ud800"}', {"a": "\ud800"}),
        ('{"a": "\u00e9"}'.encode(), {"a": "\u00e9"}),
    ],
)
def test_accepted(raw: bytes, expected: object) -> None:
    assert parse_object(raw) == expected
