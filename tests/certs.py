"""Throwaway X.509 certificates for the API's TLS tests and benchmarks: CAs, servers, clients.

One place makes them (``cryptography``, ECDSA P-256): a CA, a leaf it signs
(with SANs), an expired one, a CA of its own for "another CA". Used by
``tests/e2e/test_api_tls.py``, ``tests/e2e/test_api_doors.py`` and
``bench/_certs.py``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["LOCALHOST", "Authority", "Issued", "authority", "spiffe"]

LOCALHOST: list[x509.GeneralName] = [x509.IPAddress(IPv4Address("127.0.0.1"))]
"""The SAN of a server certificate for 127.0.0.1."""


def spiffe(uri: str) -> list[x509.GeneralName]:
    """A URI SAN (the gate's identity ``cert:<uri>``)."""
    return [x509.UniformResourceIdentifier(uri)]


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass(frozen=True)
class Authority:
    """A CA that issues into ``out``; its own certificate is :attr:`issued`."""

    out: Path
    issued: Issued
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def issue(
        self,
        name: str,
        *,
        san: list[x509.GeneralName] | None = None,
        expired: bool = False,
        days: int = 30,
    ) -> Issued:
        """A leaf certificate ``<out>/<name>.crt`` (CN ``name``) and its key."""
        cert, key = _build(name, self.certificate.subject, self.key, san, expired, days, ca=False)
        return _write(self.out, name, cert, key)


def authority(out: Path, name: str = "kernel-ca") -> Authority:
    """A new self-signed CA, written to ``<out>/<name>.crt``."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert, _ = _build(name, _name(name), key, None, False, 30, ca=True, own=key)
    return Authority(out, _write(out, name, cert, key), cert, key)


def _build(
    cn: str,
    issuer: x509.Name,
    signer: ec.EllipticCurvePrivateKey,
    san: list[x509.GeneralName] | None,
    expired: bool,
    days: int,
    *,
    ca: bool,
    own: ec.EllipticCurvePrivateKey | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = own or ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(days=days if expired else 1)
    end = now - dt.timedelta(days=1) if expired else now + dt.timedelta(days=days)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(signer, hashes.SHA256()), key


def _write(out: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    issued = Issued(out / f"{name}.crt", out / f"{name}.key")
    issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    issued.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return issued
