"""``kernel api`` over TLS as an operator runs it: mutual TLS identities, tokens, refusals.

A CA, the server's certificate and client certificates are made by :mod:`tests.certs` with
``cryptography``; the API is the real ``kernel api`` process (uvicorn, TLS).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ops.bootstrap import Kernel
from projections.migrate import migrate
from tests import identity
from tests.certs import LOCALHOST, Issued, authority, spiffe
from tests.e2e.conftest import settings_env
from tests.ports import free_port


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
    kernel_ca = authority(tmp_path)
    server = kernel_ca.issue("api", san=LOCALHOST)
    uri = spiffe("spiffe://kernel/auditor-1")
    auditor = kernel_ca.issue("auditor", san=uri)
    expired = kernel_ca.issue("old", san=uri, expired=True)
    stranger = authority(tmp_path, "other-ca").issue("stranger", san=uri)
    ca = kernel_ca.issued
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
