"""HTTP Digest for SIP (RFC 7616, RFC 8760): challenges in, Authorization values out.

Pure: the client nonce and nonce count come in as values from the caller.
"""

import hashlib
import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from intercom_sip.sip.message import parse_params, quote, split_outside_quotes

_HASHES: Final[dict[str, Callable[[bytes], str]]] = {
    "MD5": lambda data: hashlib.md5(data, usedforsecurity=False).hexdigest(),
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
}
MAX_CHALLENGES: Final = 8  # per response: a registrar offers one or two; the rest is noise
# An item that opens a challenge: `Scheme param=...`, `Scheme token68`, or a bare `Scheme`.
_OPENS_CHALLENGE: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:\s+\S.*)?", re.S)
_PARAM_START: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\s*=")


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
    text = value.strip()
    scheme = text.split(None, 1)[0] if text else ""
    rest = text[len(scheme) :]
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


def split_challenges(value: str) -> list[str]:
    """The challenges of one header value, each as its own text.

    SIP puts one challenge in each header (RFC 3261 §25.1), but a server may follow HTTP
    (RFC 7235 §4.1) and join several with commas: `Digest a=1, b=2, Digest a=3`. A comma
    is the border of two challenges when what follows it is not a `name=value` parameter.
    """
    challenges: list[str] = []
    for item in split_outside_quotes(value, ","):
        text = item.strip()
        if not text:
            continue
        if not challenges or _opens_challenge(text):
            challenges.append(text)
        else:
            challenges[-1] += ", " + text
    return challenges


def choose(values: Iterable[str]) -> tuple[str, DigestChallenge] | Unsupported:
    """The first challenge we can answer, across headers and within them, in the order the
    server gave (RFC 8760 §2.4: the topmost one the client supports); each header value of
    the right kind (WWW- or Proxy-Authenticate) is one item of `values`."""
    reasons: list[str] = []
    every = (text for value in values for text in split_challenges(value))
    for text in itertools.islice(every, MAX_CHALLENGES):
        parsed = parse_challenge(text)
        if isinstance(parsed, DigestChallenge):
            return text, parsed
        reasons.append(parsed.reason)
    return Unsupported("; ".join(reasons) or "no challenge")


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


def _opens_challenge(item: str) -> bool:
    return _PARAM_START.match(item) is None and _OPENS_CHALLENGE.fullmatch(item) is not None
