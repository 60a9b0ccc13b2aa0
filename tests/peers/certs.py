"""A throwaway certificate authority for TLS tests, made with the openssl command."""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CertPair:
    """A private key and its certificate, both PEM files."""

    key: Path
    cert: Path


@dataclass(frozen=True)
class TestCA:
    """A self-signed CA whose certificate a client loads to verify the server."""

    __test__ = False  # a value, not a pytest test class

    key: Path
    cert: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=30)


def _new_key(path: Path) -> None:
    # P-256 keys are generated in milliseconds, RSA ones take far longer.
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)


def make_ca(directory: Path, name: str) -> TestCA:
    """Create a CA named `name` with files `<name>-ca.key` and `<name>-ca.pem`."""
    ca = TestCA(key=directory / f"{name}-ca.key", cert=directory / f"{name}-ca.pem")
    _new_key(ca.key)
    _openssl(
        "req", "-x509", "-new", "-key", ca.key, "-out", ca.cert, "-days", "2",
        "-subj", f"/CN={name} test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return ca


def issue(ca: TestCA, directory: Path, name: str, hosts: tuple[str, ...]) -> CertPair:
    """Issue a server certificate for `hosts` (names or IP addresses) signed by `ca`."""
    pair = CertPair(key=directory / f"{name}.key", cert=directory / f"{name}.pem")
    csr = directory / f"{name}.csr"
    ext = directory / f"{name}.ext"
    _new_key(pair.key)
    _openssl("req", "-new", "-key", pair.key, "-out", csr, "-subj", f"/CN={hosts[0]}")
    ext.write_text(_extensions(hosts))
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial",
        "-days", "2", "-out", pair.cert, "-extfile", ext,
    )  # fmt: skip
    return pair


def _extensions(hosts: tuple[str, ...]) -> str:
    # Strict verifiers (Python 3.13's VERIFY_X509_STRICT) want AKID and a proper leaf profile.
    sans = ",".join(f"IP:{h}" if _is_ip(h) else f"DNS:{h}" for h in hosts)
    return (
        f"subjectAltName={sans}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n"
    )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
