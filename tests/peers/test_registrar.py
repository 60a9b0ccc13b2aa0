"""Our registrar's own tests: each behaviour, seen from a minimal client on the wire."""

from collections.abc import Iterator
from dataclasses import replace

import pytest

from intercom_sip.sip import digest

from . import sipclient
from .registrar import Behaviour, Registrar

pytestmark = pytest.mark.peers


@pytest.fixture
def registrar() -> Iterator[Registrar]:
    with Registrar() as made:
        yield made


def connect(registrar: Registrar, transport: str = "udp") -> sipclient.Connection:
    return sipclient.Connection(transport, ("127.0.0.1", registrar.port), timeout=5)


def first_register(conn: sipclient.Connection, cseq: int = 1, *extra: str) -> sipclient.Message:
    uri = f"sip:127.0.0.1:{conn.server[1]}"
    dialog = sipclient.Dialog.new()
    conn.send(
        sipclient.request(
            conn,
            "REGISTER",
            uri=uri,
            user="101",
            dialog=dialog,
            cseq=cseq,
            extra=("Contact: <sip:101@127.0.0.1:5999>", "Expires: 30", *extra),
        )
    )
    return conn.receive_final()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_right_password_is_registered(registrar: Registrar, transport: str) -> None:
    with connect(registrar, transport) as conn:
        answer = sipclient.register(conn, "101", "secret", contact="<sip:101@127.0.0.1:5999>")
        host, port = conn.local
    assert answer.status == 200
    assert answer.all("Contact") == ["<sip:101@127.0.0.1:5999>;expires=30"]
    via = answer.header("Via") or ""
    assert via.endswith(f";received={host};rport={port}")
    assert registrar.bindings("101") == ["sip:101@127.0.0.1:5999"]
    assert registrar.codes() == [401, 200]
    assert {r.transport for r in registrar.registers()} == {transport}


def test_a_wrong_password_is_challenged_again_with_the_same_fixed_nonce(
    registrar: Registrar,
) -> None:
    with connect(registrar) as conn:
        assert sipclient.register(conn, "101", "wrong").status == 401
    assert registrar.codes() == [401, 401]
    assert registrar.bindings("101") == []


def test_a_new_nonce_with_every_challenge(registrar: Registrar) -> None:
    registrar.behaviour = Behaviour(nonces="per-challenge")
    with connect(registrar) as conn:
        nonces = {first_register(conn).header("WWW-Authenticate") for _ in range(3)}
    assert len(nonces) == 3


def test_a_one_time_nonce_reused_is_stale() -> None:
    with Registrar(Behaviour(nonces="one-time")) as registrar, connect(registrar) as conn:
        challenge = first_register(conn).header("WWW-Authenticate") or ""
        uri = f"sip:127.0.0.1:{registrar.port}"
        auth = sipclient.digest_authorization(challenge, "REGISTER", uri, "101", "secret")
        assert first_register(conn, 2, auth).status == 200
        again = first_register(conn, 3, auth)
    assert again.status == 401
    assert (again.header("WWW-Authenticate") or "").endswith(", stale=true")


@pytest.mark.parametrize(
    ("stale", "expected"), [("never", ["401", "401"]), ("always", ["401 stale", "401 stale"])]
)
def test_stale_never_and_always(stale: str, expected: list[str]) -> None:
    behaviour = Behaviour(nonces="one-time", stale=stale)  # type: ignore[arg-type]
    with Registrar(behaviour) as registrar, connect(registrar) as conn:
        answers = [first_register(conn, n) for n in (1, 2)]
    assert [
        f"{a.status}" + (" stale" if "stale=true" in (a.header("WWW-Authenticate") or "") else "")
        for a in answers
    ] == expected


def test_several_challenges_in_order() -> None:
    behaviour = Behaviour(challenges=("Basic", "Digest SHA-512-256", "Digest MD5"), qop=None)
    with Registrar(behaviour) as registrar, connect(registrar) as conn:
        values = first_register(conn).all("WWW-Authenticate")
        nonce = registrar._fixed
        registrar.behaviour = replace(behaviour, one_header=True)
        joined = first_register(conn, 2).all("WWW-Authenticate")
    assert values == [
        'Basic realm="fake.test"',
        f'Digest realm="fake.test", nonce="{nonce}", algorithm=SHA-512-256',
        f'Digest realm="fake.test", nonce="{nonce}", algorithm=MD5',
    ]
    assert joined == [", ".join(values)]


def test_sha256_is_checked_for_real() -> None:
    behaviour = Behaviour(challenges=("Digest SHA-256",))
    with Registrar(behaviour) as registrar, connect(registrar) as conn:
        challenge = digest.parse_challenge(first_register(conn).header("WWW-Authenticate") or "")
        assert isinstance(challenge, digest.DigestChallenge)
        uri = f"sip:127.0.0.1:{registrar.port}"
        answers = []
        for password in ("wrong", "secret"):
            value = digest.authorization(
                challenge, digest.Credentials("101", password), "REGISTER", uri, cnonce="c", nc=1
            )
            answers.append(first_register(conn, 2, f"Authorization: {value}").status)
    assert answers == [401, 200]
    assert registrar.registers()[-1].authorization["algorithm"] == "SHA-256"


def test_proxy_auth_asks_with_407() -> None:
    with Registrar(Behaviour(proxy_auth=True)) as registrar, connect(registrar) as conn:
        answer = first_register(conn)
    assert answer.status == 407
    assert answer.header("Proxy-Authenticate") is not None
    assert answer.header("WWW-Authenticate") is None


def test_no_rport_leaves_the_via_alone() -> None:
    with Registrar(Behaviour(rport=False)) as registrar, connect(registrar) as conn:
        sent_via = f"SIP/2.0/UDP {conn.local[0]}:{conn.local[1]};branch="
        answer = first_register(conn)
    via = answer.header("Via") or ""
    assert via.startswith(sent_via)
    assert via.endswith(";rport")
    assert "received" not in via


def test_423_then_the_grant() -> None:
    behaviour = Behaviour(min_expires=60, grant=90)
    with Registrar(behaviour) as registrar, connect(registrar) as conn:
        contact = "<sip:101@127.0.0.1:5999>"
        brief = sipclient.register(conn, "101", "secret", expires=30, contact=contact)
        granted = sipclient.register(conn, "101", "secret", expires=60, contact=contact)
    assert (brief.status, brief.header("Min-Expires")) == (423, "60")
    assert (granted.status, granted.all("Contact")) == (200, [f"{contact};expires=90"])
    assert registrar.codes() == [401, 423, 401, 200]


def test_unregister_removes_the_binding(registrar: Registrar) -> None:
    with connect(registrar) as conn:
        contact = "<sip:101@127.0.0.1:5999>"
        sipclient.register(conn, "101", "secret", contact=contact)
        gone = sipclient.register(conn, "101", "secret", expires=0, contact=contact)
    assert (gone.status, gone.all("Contact")) == (200, [])
    assert registrar.bindings("101") == []


def test_forbid_and_silence(registrar: Registrar) -> None:
    registrar.behaviour = Behaviour(mode="forbid")
    with connect(registrar) as conn:
        assert first_register(conn).status == 403
    registrar.behaviour = Behaviour(mode="silent")
    address = ("127.0.0.1", registrar.port)
    with sipclient.Connection("udp", address, timeout=0.3) as conn, pytest.raises(TimeoutError):
        first_register(conn)
    assert registrar.codes() == [403, None]


def test_what_it_records_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from . import registrar as module

    monkeypatch.setattr(module, "MAX_RECORDED", 3)
    with Registrar() as registrar, connect(registrar) as conn:
        for cseq in range(5):
            first_register(conn, cseq + 1)
        assert [r.request.headers.get("CSeq") for r in registrar.registers()] == [
            "3 REGISTER",
            "4 REGISTER",
            "5 REGISTER",
        ]
        assert registrar.total == 5


def test_the_nonce_table_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from . import registrar as module

    monkeypatch.setattr(module, "MAX_NONCES", 2)
    with Registrar(Behaviour(nonces="per-challenge")) as registrar, connect(registrar) as conn:
        oldest = first_register(conn).header("WWW-Authenticate") or ""
        first_register(conn, 2)
        first_register(conn, 3)  # the oldest nonce is dropped here
        uri = f"sip:127.0.0.1:{registrar.port}"
        auth = sipclient.digest_authorization(oldest, "REGISTER", uri, "101", "secret")
        answer = first_register(conn, 4, auth)
    assert answer.status == 401
    assert (answer.header("WWW-Authenticate") or "").endswith(", stale=true")
