"""The pure HTTP/1.1 rules: refusals, the scope, the answers' heads and their framing."""

import pytest

from intercom_sip.api import h1

JSON = ((b"content-type", b"application/json"),)


def test_a_whole_answer_gets_its_length() -> None:
    made = h1.answer_head(200, JSON, "1.1", True, b"{}")
    assert made is not None
    assert made[0] == (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n"
    )
    assert made[1] == h1.Framing(False, 2, True)


def test_a_stream_is_chunked_for_1_1_and_ends_the_connection_for_1_0() -> None:
    made = h1.answer_head(200, JSON, "1.1", True, None)
    assert made is not None and made[1] == h1.Framing(True, None, True)
    assert b"transfer-encoding: chunked\r\n" in made[0]
    old = h1.answer_head(200, JSON, "1.0", True, None)
    assert old is not None and old[1] == h1.Framing(False, None, False)
    assert old[0].endswith(b"connection: close\r\n\r\n")


def test_an_http_1_0_client_that_keeps_alive_is_told_so() -> None:
    made = h1.answer_head(200, JSON, "1.0", True, b"")
    assert made is not None and made[0].endswith(b"connection: keep-alive\r\n\r\n")


@pytest.mark.parametrize("value", [b"a\r\nx-injected: 1", b"a\nb", b"a\rb"])
def test_a_header_with_cr_or_lf_is_refused(value: bytes) -> None:
    assert h1.answer_head(200, ((b"x-a", value),), "1.1", True, b"") is None


@pytest.mark.parametrize("length", [b"-1", b"x", b""])
def test_a_refused_head_is_refused_again_once_kept(length: bytes) -> None:
    headers = ((b"content-length", length),)
    assert [h1.answer_head(200, headers, "1.1", True, b"") for _ in range(3)] == [None] * 3
    assert h1._HEADS[(200, headers, "1.1", True, 0)] is None  # kept as refused


def test_a_kept_head_gives_a_framing_of_its_own_each_time() -> None:
    first, again = (h1.answer_head(200, JSON, "1.1", True, b"{}") for _ in range(2))
    assert first is not None and again is not None
    assert first == again and first[1] is not again[1]  # each answer counts down its own


def test_a_wrong_length_from_the_app_is_refused() -> None:
    assert h1.answer_head(200, ((b"content-length", b"-1"),), "1.1", True, b"") is None


def test_the_heads_kept_stay_bounded() -> None:
    for n in range(h1.HEADS_KEPT * 3):
        assert h1.answer_head(200, ((b"x-n", b"%d" % n),), "1.1", True, b"") is not None
        assert len(h1._HEADS) <= h1.HEADS_KEPT


@pytest.mark.parametrize(
    ("version", "hosts", "coding", "refusal"),
    [
        ("1.1", 1, None, None),
        ("1.0", 0, None, None),
        ("1.1", 0, None, h1.BAD_REQUEST),
        ("1.1", 2, None, h1.BAD_REQUEST),
        ("2.0", 1, None, h1.VERSION),
        ("1.1", 1, b"Chunked", None),
        ("1.1", 1, b"gzip, chunked", h1.NOT_IMPLEMENTED),
    ],
)
def test_check(version: str, hosts: int, coding: bytes | None, refusal: bytes | None) -> None:
    assert h1.check(version, hosts, coding) == refusal


def test_the_refusals_are_json_and_close() -> None:
    assert h1.VERSION == (
        b"HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-type: application/json\r\n"
        b"cache-control: no-store\r\ncontent-length: 39\r\nconnection: close\r\n\r\n"
        b'{"error": "HTTP version not supported"}'
    )


def test_an_absolute_form_target_takes_its_authority_as_the_host() -> None:
    scope = h1.scope(
        "GET",
        b"http://example.com:8080/a%2Fb?q=1",
        "1.1",
        [(b"host", b"other"), (b"accept", b"*/*")],
        client=None,
        server=None,
    )
    assert scope is not None
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == ("/a/b", b"/a%2Fb", b"q=1")
    assert scope["headers"] == [(b"accept", b"*/*"), (b"host", b"example.com:8080")]


@pytest.mark.parametrize("target", [b"http:///a", b"/\xc3\xa9"])
def test_targets_without_authority_or_not_ascii_are_refused(target: bytes) -> None:
    assert h1.scope("GET", target, "1.1", [], client=None, server=None) is None
