"""HTTP Digest for SIP: the RFC 7616 §3.9.1 vectors, challenges, and quoting."""

import hashlib

import pytest

from intercom_sip.sip.digest import (
    MAX_CHALLENGES,
    Credentials,
    DigestChallenge,
    Unsupported,
    authorization,
    choose,
    parse_challenge,
    response,
    split_challenges,
)

MUFASA = Credentials("Mufasa", "Circle of Life")
REALM = "http-auth@example.org"
NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


def rfc7616(algorithm: str) -> DigestChallenge:
    return DigestChallenge(REALM, NONCE, algorithm, ("auth",), OPAQUE)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_vectors(algorithm: str, expected: str) -> None:
    challenge = rfc7616(algorithm)
    assert response(challenge, MUFASA, "GET", "/dir/index.html", cnonce=CNONCE, nc=1) == expected
    assert authorization(challenge, MUFASA, "GET", "/dir/index.html", cnonce=CNONCE, nc=1) == (
        'Digest username="Mufasa", realm="http-auth@example.org", '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", uri="/dir/index.html", '
        f'response="{expected}", algorithm={algorithm}, qop=auth, nc=00000001, '
        'cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )


def test_rfc7616_challenge_parses() -> None:
    value = (
        f'Digest realm="{REALM}", qop="auth, auth-int", algorithm=SHA-256, '
        f'nonce="{NONCE}", opaque="{OPAQUE}"'
    )
    assert parse_challenge(value) == DigestChallenge(
        REALM, NONCE, "SHA-256", ("auth", "auth-int"), OPAQUE
    )


def test_a_kamailio_challenge() -> None:
    value = 'Digest realm="kamailio.test", nonce="Y2FmZWJhYmUwMDAxOmFiY2RlZg==", qop="auth"'
    assert parse_challenge(value) == DigestChallenge(
        "kamailio.test", "Y2FmZWJhYmUwMDAxOmFiY2RlZg==", "MD5", ("auth",)
    )


def test_a_challenge_with_every_parameter() -> None:
    value = (
        'digest realm="r", nonce="n", algorithm=md5-sess, stale=TRUE, opaque="o,p", '
        'qop="auth,auth-int"'
    )
    assert parse_challenge(value) == DigestChallenge(
        "r", "n", "md5-sess", ("auth", "auth-int"), "o,p", stale=True
    )
    assert parse_challenge('Digest realm="r", nonce="n", stale=false') == DigestChallenge("r", "n")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('Digest realm="r", nonce="n", algorithm=SHA-512-256', "algorithm SHA-512-256"),
        ('Digest realm="r", nonce="n", algorithm=SHA-1', "algorithm SHA-1"),
        ('Basic realm="r"', "scheme Basic"),
        ("", "scheme (none)"),
        ('Digest realm="r", nonce="n", qop="auth-int"', "qop auth-int"),
        ('Digest realm="r", qop="auth"', "no nonce or realm"),
        ('Digest nonce="n"', "no nonce or realm"),
        ("Digest", "no nonce or realm"),
    ],
)
def test_challenges_we_cannot_answer(value: str, reason: str) -> None:
    assert parse_challenge(value) == Unsupported(reason)


def test_rfc2069_response_without_qop() -> None:
    challenge = DigestChallenge("kamailio.test", "abc123")
    ha1 = md5("101:kamailio.test:secret1")
    ha2 = md5("REGISTER:sip:kamailio.test")
    expected = md5(f"{ha1}:abc123:{ha2}")
    creds = Credentials("101", "secret1")
    args = ("REGISTER", "sip:kamailio.test")
    assert response(challenge, creds, *args, cnonce="unused", nc=1) == expected
    assert authorization(challenge, creds, *args, cnonce="unused", nc=1) == (
        'Digest username="101", realm="kamailio.test", nonce="abc123", '
        f'uri="sip:kamailio.test", response="{expected}", algorithm=MD5'
    )


def test_md5_sess_response() -> None:
    challenge = DigestChallenge("r", "n", "MD5-SESS", ("auth",))
    ha1 = md5(f"{md5('u:r:p')}:n:c")
    expected = md5(f"{ha1}:n:0000000a:c:auth:{md5('INVITE:sip:x@y')}")
    creds = Credentials("u", "p")
    assert response(challenge, creds, "INVITE", "sip:x@y", cnonce="c", nc=10) == expected


def test_the_nonce_count_is_eight_hex_digits() -> None:
    challenge = DigestChallenge("r", "n", qop=("auth",))
    value = authorization(challenge, Credentials("u", "p"), "M", "sip:x", cnonce="c", nc=255)
    assert ", nc=000000ff, " in value


def test_usernames_with_quotes_and_backslashes_are_escaped() -> None:
    challenge = DigestChallenge("r", "n")
    value = authorization(challenge, Credentials('a"b\\c', "p"), "M", "sip:x", cnonce="", nc=1)
    assert value.startswith('Digest username="a\\"b\\\\c", realm="r", ')
    # The hash covers the name itself, not its quoted form.
    expected = md5(md5('a"b\\c:r:p') + ":n:" + md5("M:sip:x"))
    assert f'response="{expected}"' in value


def test_the_password_is_never_in_the_repr() -> None:
    creds = Credentials("101", "Circle of Life")
    assert repr(creds) == "Credentials(username='101')"
    assert "Circle" not in str(creds)


# --- choosing among several challenges (RFC 7616 §3.7, RFC 8760 §2.4) -----------------

SHA512 = 'Digest realm="r", nonce="n1", algorithm=SHA-512-256, qop="auth"'
MD5 = 'Digest realm="r", nonce="n2", algorithm=MD5, qop="auth"'


@pytest.mark.parametrize(
    ("headers", "text", "algorithm"),
    [
        ([SHA512, MD5], MD5, "MD5"),  # the lock-out of finding 12
        ([MD5, SHA512], MD5, "MD5"),
        (['Basic realm="r"', MD5], MD5, "MD5"),
        (["Negotiate", 'Digest realm="r"', MD5], MD5, "MD5"),  # unknown scheme, no nonce
        ([f"{SHA512}, {MD5}"], MD5, "MD5"),  # two in one header, HTTP style
        (
            ['Basic dXNlcjpwYXNz, Digest realm="r", nonce="n3"'],
            'Digest realm="r", nonce="n3"',
            "MD5",
        ),
        (
            ['Digest realm="r", nonce="n4", algorithm=sha-256', MD5],
            'Digest realm="r", nonce="n4", algorithm=sha-256',
            "sha-256",
        ),
        (
            ['Digest realm="r", nonce="n5", algorithm=Md5-Sess'],
            'Digest realm="r", nonce="n5", algorithm=Md5-Sess',
            "Md5-Sess",
        ),
        (['Digest realm="r", nonce="n6", qop="auth-int", algorithm=SHA-256', MD5], MD5, "MD5"),
    ],
)
def test_the_first_challenge_we_can_answer_wins(
    headers: list[str], text: str, algorithm: str
) -> None:
    chosen = choose(headers)
    assert not isinstance(chosen, Unsupported)
    assert chosen[0] == text
    assert chosen[1].algorithm == algorithm  # echoed as the server spelled it


def test_auth_and_auth_int_together_answer_with_auth() -> None:
    chosen = choose(['Digest realm="r", nonce="n", qop="auth-int, auth"'])
    assert not isinstance(chosen, Unsupported)
    assert chosen[1].qop == ("auth-int", "auth")
    value = authorization(chosen[1], Credentials("u", "p"), "REGISTER", "sip:r", cnonce="c", nc=1)
    assert ", qop=auth, nc=00000001, " in value


def test_no_challenge_we_can_answer() -> None:
    assert choose([SHA512, 'Basic realm="r"', "Digest"]) == Unsupported(
        "algorithm SHA-512-256; scheme Basic; no nonce or realm"
    )
    assert choose([]) == Unsupported("no challenge")


def test_only_the_first_challenges_are_read() -> None:
    junk = ['Digest realm="r", nonce="x", algorithm=SHA-1'] * MAX_CHALLENGES
    assert isinstance(choose([*junk, MD5]), Unsupported)
    assert choose([*junk[1:], MD5]) == (MD5, parse_challenge(MD5))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (MD5, [MD5]),
        (f"{SHA512}, {MD5}", [SHA512, MD5]),
        ('Digest realm="a, Digest b", nonce="n"', ['Digest realm="a, Digest b", nonce="n"']),
        (
            'Digest realm = "r" , nonce="n",Digest\trealm="s"',
            ['Digest realm = "r", nonce="n"', 'Digest\trealm="s"'],
        ),
        ("Basic abc==, Bearer", ["Basic abc==", "Bearer"]),
        (" , ", []),
    ],
)
def test_split_challenges(value: str, expected: list[str]) -> None:
    assert split_challenges(value) == expected


def test_a_tab_after_the_scheme() -> None:
    assert parse_challenge('Digest\trealm="r", nonce="n"') == DigestChallenge("r", "n")
