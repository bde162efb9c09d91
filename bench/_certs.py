"""A throwaway CA, server and client certificate for benchmarking TLS and mTLS locally."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["Certs", "make_certs"]


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_identity: str  # what the API's gate calls the client


def _write(out: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    (out / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def make_certs(out: Path) -> Certs:
    now = dt.datetime.now(dt.UTC)

    def issue(
        cn: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None, **ext: object
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        b = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer[0].subject if issuer else name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), True)
        )
        if "san" in ext:
            b = b.add_extension(x509.SubjectAlternativeName(ext["san"]), False)  # type: ignore[arg-type]
        return b.sign(issuer[1] if issuer else key, hashes.SHA256()), key

    ca = issue("bench-ca", None)
    server = issue("api", ca, san=[x509.IPAddress(IPv4Address("127.0.0.1"))])
    client = issue("checker", ca, san=[x509.UniformResourceIdentifier("spiffe://bench/checker")])
    for name, pair in (("ca", ca), ("server", server), ("client", client)):
        _write(out, name, *pair)
    return Certs(
        out / "ca.crt",
        out / "server.crt",
        out / "server.key",
        out / "client.crt",
        out / "client.key",
        "cert:spiffe://bench/checker",
    )
