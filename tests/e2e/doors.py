"""A real ``kernel api`` behind its doors, for the tests of bad input and bad identities.

One deployment: its own topics and database, events chained and projected
(so the read routes answer with data), a policy active (so the check
decides), and the API as an operator runs it -- ``kernel api`` (uvicorn) over
TLS with a client CA, on real Kafka and Postgres. Each role has a bearer token
and a client certificate of its own (``cert:spiffe://kernel/<role>`` in the
roles file); one token is revoked, one certificate is expired, one is of
another CA.
"""

from __future__ import annotations

import http.client
import json
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ops.bootstrap import Kernel
from ops.config import Settings
from ops.http.tokens import ROLES, TokenStore
from projections.migrate import migrate
from schemas.events import new_event
from streams.chain.keys import generate_key
from tests.certs import LOCALHOST, Issued, authority, spiffe
from tests.conftest import fresh_database
from tests.integration.sentinel.test_stream_runner import DENY_BIG, activate
from tests.ports import free_port

__all__ = ["Doors", "deployed"]


@dataclass(frozen=True)
class Doors:
    """The running API and every identity the tests knock with."""

    port: int
    ca: Issued  # the CA the server's certificate and the role certificates chain to
    tokens: dict[str, str]  # role -> a token of that role only; "every-role"; "revoked"
    certs: dict[str, Issued]  # role -> its certificate; "wrong-ca", "expired" -> auditor's name
    log: Path

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def context(self, cert: Issued | None = None) -> ssl.SSLContext:
        """A client TLS context trusting the server's CA, presenting ``cert`` if given."""
        ctx = ssl.create_default_context(cafile=str(self.ca.cert))
        if cert is not None:
            ctx.load_cert_chain(str(cert.cert), str(cert.key))
        return ctx


def _publish_data(kernel: Kernel, tmp: Path) -> None:
    """Events chained and projected, and a policy the check decides with."""
    key = generate_key(tmp / "keys", "doors-signer")
    kernel = Kernel(replace(kernel.settings, signing_key=key, signer_id="doors-signer"))
    kernel.producer().publish_batch(activate(DENY_BIG))
    events = [
        new_event("kernelAction", "svc", f"acct-{i % 2}", {"action": "a", "context": {"i": i}})
        for i in range(4)
    ]
    kernel.producer().publish_batch(events)
    runners: list[Any] = [kernel.chain_signer(), kernel.audit_projector()]
    for runner in [*runners, *kernel.sentinel_projectors()]:
        try:
            runner.run_until_idle(idle_s=0.5)
        finally:
            runner.close()


def _wait_up(doors: Doors, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, doors.log.read_text()[-4000:]
        conn = http.client.HTTPSConnection("127.0.0.1", doors.port, context=doors.context())
        try:
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
        finally:
            conn.close()
    raise AssertionError("kernel api did not come up: " + doors.log.read_text()[-4000:])


@contextmanager
def deployed(base_settings: Settings, tmp: Path) -> Iterator[Doors]:
    """The deployment, up; the server stopped (and its log checked clean) on exit."""
    settings = replace(base_settings, topic_prefix=f"t{uuid.uuid4().hex[:12]}.")
    with fresh_database(base_settings.database_url) as url:
        kernel = Kernel(replace(settings, postgres_url=url))
        kernel.topic_admin().ensure()
        migrate(url)
        _publish_data(kernel, tmp)
        ca = authority(tmp)
        server_cert = ca.issue("api", san=LOCALHOST)
        certs = {role: ca.issue(role, san=spiffe(f"spiffe://kernel/{role}")) for role in ROLES}
        auditor = spiffe("spiffe://kernel/auditor")
        certs["expired"] = ca.issue("expired", san=auditor, expired=True)
        certs["wrong-ca"] = authority(tmp, "other-ca").issue("wrong-ca", san=auditor)
        roles = tmp / "roles.json"
        table = {f"cert:spiffe://kernel/{role}": [role] for role in ROLES}
        roles.write_text(json.dumps({"identities": table}))
        store = TokenStore(tmp / "tokens.json")
        tokens = {role: store.create(f"as-{role}", [role])[0] for role in ROLES}
        tokens["every-role"] = store.create("as-every-role", ROLES)[0]
        tokens["revoked"] = store.create("gone", ["auditor"])[0]
        store.revoke("gone")
        from tests.e2e.conftest import settings_env

        env = settings_env(replace(kernel.settings, tokens_file_path=store.path))
        env.update(KERNEL_ROLES_FILE=str(roles), KERNEL_METRICS_PORT="0")
        doors = Doors(free_port(), ca.issued, tokens, certs, tmp / "api.log")
        argv = [str(Path(sys.executable).with_name("kernel")), "api", "--port", str(doors.port)]
        argv += ["--tls-cert", str(server_cert.cert), "--tls-key", str(server_cert.key)]
        argv += ["--client-ca", str(ca.issued.cert)]
        with doors.log.open("wb") as sink:  # a file: a pipe nobody reads fills and blocks
            server = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            _wait_up(doors, server)
            yield doors
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=60)
        output = doors.log.read_text()
        assert "Traceback" not in output, output[-4000:]
