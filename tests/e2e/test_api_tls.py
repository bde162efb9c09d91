"""``kernel api`` over TLS as an operator runs it: mutual TLS identities, tokens, refusals.

A CA, the server's certificate and client certificates are made here with
``cryptography``; the API is the real ``kernel api`` process (uvicorn, TLS).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ops.bootstrap import Kernel
from projections.migrate import migrate
from tests import identity
from tests.e2e.conftest import settings_env
from tests.ports import free_port

NOW = dt.datetime.now(dt.UTC)


@dataclass
class Issued:
    cert: Path
    key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    out: Path,
    name: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    san: list[x509.GeneralName] | None = None,
    ca: bool = False,
    expired: bool = False,
) -> tuple[Issued, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    start = NOW - dt.timedelta(days=30 if expired else 1)
    end = NOW - dt.timedelta(days=1) if expired else NOW + dt.timedelta(days=30)
    signer_cert, signer_key = issuer if issuer else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(signer_cert.subject if signer_cert else _name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    cert = builder.sign(signer_key, hashes.SHA256())
    issued = Issued(out / f"{name}.crt", out / f"{name}.key")
    issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    issued.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return issued, cert, key


@dataclass
class Deployment:
    port: int
    ca: Issued
    auditor: Issued
    stranger: Issued
    expired: Issued


@pytest.fixture
def tls_api(db_kernel: Kernel, tmp_path: Path) -> Iterator[Deployment]:
    migrate(db_kernel.settings.database_url)
    ca, ca_cert, ca_key = _issue(tmp_path, "kernel-ca", None, ca=True)
    server, _, _ = _issue(
        tmp_path, "api", (ca_cert, ca_key), san=[x509.IPAddress(IPv4Address("127.0.0.1"))]
    )
    uri = x509.UniformResourceIdentifier("spiffe://kernel/auditor-1")
    auditor, _, _ = _issue(tmp_path, "auditor", (ca_cert, ca_key), san=[uri])
    expired, _, _ = _issue(tmp_path, "old", (ca_cert, ca_key), san=[uri], expired=True)
    _, other_cert, other_key = _issue(tmp_path, "other-ca", None, ca=True)
    stranger, _, _ = _issue(tmp_path, "stranger", (other_cert, other_key), san=[uri])
    roles = tmp_path / "roles.json"
    roles.write_text(json.dumps({"identities": {"cert:spiffe://kernel/auditor-1": ["auditor"]}}))
    port = free_port()
    env = settings_env(db_kernel.settings)
    env.update(KERNEL_ROLES_FILE=str(roles), KERNEL_METRICS_PORT="0")
    exe = str(Path(sys.executable).with_name("kernel"))
    argv = [exe, "api", "--port", str(port), "--tls-cert", str(server.cert)]
    argv += ["--tls-key", str(server.key), "--client-ca", str(ca.cert)]
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        yield Deployment(port, ca, auditor, stranger, expired)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _get(
    d: Deployment, path: str, cert: Issued | None, headers: dict[str, str] | None = None
) -> int:
    ctx = ssl.create_default_context(cafile=str(d.ca.cert))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    conn = http.client.HTTPSConnection("127.0.0.1", d.port, context=ctx, timeout=20)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_a_client_certificate_is_an_identity_with_the_roles_configured(tls_api: Deployment) -> None:
    assert _get(tls_api, "/audit/chains", tls_api.auditor) == 200
    assert _get(tls_api, "/metrics", tls_api.auditor) == 403  # auditor, not operator
    assert _get(tls_api, "/health", None) == 200  # open, certificate or not


def test_without_a_certificate_a_token_still_works_and_nothing_is_401(tls_api: Deployment) -> None:
    assert _get(tls_api, "/audit/chains", None, identity.AUTH) == 200
    assert _get(tls_api, "/audit/chains", None) == 401


@pytest.mark.parametrize("which", ["stranger", "expired"])
def test_a_certificate_of_another_ca_or_expired_is_refused_at_the_handshake(
    tls_api: Deployment, which: str
) -> None:
    cert = tls_api.stranger if which == "stranger" else tls_api.expired
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        _get(tls_api, "/audit/chains", cert)


def test_production_refuses_a_plaintext_listener_and_says_why(kernel: Kernel) -> None:
    env = settings_env(kernel.settings)
    env["KERNEL_ENV"] = "production"
    exe = str(Path(sys.executable).with_name("kernel"))
    done = subprocess.run(
        [exe, "api", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "refuses a plaintext listener" in done.stderr
    assert "KERNEL_API_TLS_CERT" in done.stderr
