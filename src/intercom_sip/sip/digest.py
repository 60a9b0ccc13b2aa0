"""HTTP Digest for SIP (RFC 7616, RFC 8760): challenges in, Authorization values out.

Pure: the client nonce and nonce count come in as values from the caller.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from intercom_sip.sip.message import parse_params, quote, split_outside_quotes

_HASHES: Final[dict[str, Callable[[bytes], str]]] = {
    "MD5": lambda data: hashlib.md5(data, usedforsecurity=False).hexdigest(),
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
}


@dataclass(frozen=True)
class DigestChallenge:
    realm: str
    nonce: str
    algorithm: str = "MD5"  # as the server spelled it: it is echoed back
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False


@dataclass(frozen=True)
class Unsupported:
    """A challenge we cannot answer, and why."""

    reason: str


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


def parse_challenge(value: str) -> DigestChallenge | Unsupported:
    """`Digest realm="r", nonce="n", qop="auth,auth-int", algorithm=SHA-256`."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return Unsupported(f"scheme {scheme or '(none)'}")
    params: dict[str, str] = {}
    for item in split_outside_quotes(rest, ","):
        params |= parse_params(item)
    if "nonce" not in params or "realm" not in params:
        return Unsupported("no nonce or realm")
    algorithm = params.get("algorithm", "MD5")
    if algorithm.upper().removesuffix("-SESS") not in _HASHES:
        return Unsupported(f"algorithm {algorithm}")
    qops = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    if qops and "auth" not in qops:
        return Unsupported("qop " + ",".join(qops))
    return DigestChallenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=algorithm,
        qop=qops,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
    )


def response(
    challenge: DigestChallenge, creds: Credentials, method: str, uri: str, *, cnonce: str, nc: int
) -> str:
    """The `response` value: qop=auth when offered, else RFC 2069 style."""
    name = challenge.algorithm.upper()
    h = _HASHES[name.removesuffix("-SESS")]
    ha1 = h(f"{creds.username}:{challenge.realm}:{creds.password}".encode())
    if name.endswith("-SESS"):
        ha1 = h(f"{ha1}:{challenge.nonce}:{cnonce}".encode())
    ha2 = h(f"{method}:{uri}".encode())
    if "auth" in challenge.qop:
        return h(f"{ha1}:{challenge.nonce}:{nc:08x}:{cnonce}:auth:{ha2}".encode())
    return h(f"{ha1}:{challenge.nonce}:{ha2}".encode())


def authorization(
    challenge: DigestChallenge, creds: Credentials, method: str, uri: str, *, cnonce: str, nc: int
) -> str:
    """The Authorization / Proxy-Authorization header value."""
    parts = [
        f"username={quote(creds.username)}",
        f"realm={quote(challenge.realm)}",
        f"nonce={quote(challenge.nonce)}",
        f"uri={quote(uri)}",
        f"response={quote(response(challenge, creds, method, uri, cnonce=cnonce, nc=nc))}",
        f"algorithm={challenge.algorithm}",
    ]
    if "auth" in challenge.qop:
        parts += ["qop=auth", f"nc={nc:08x}", f"cnonce={quote(cnonce)}"]
    if challenge.opaque is not None:
        parts.append(f"opaque={quote(challenge.opaque)}")
    return "Digest " + ", ".join(parts)
