"""The local broker's SASL_SSL mode: a local CA and keystores (JDK ``keytool``), SCRAM users.

``kernel up --secure`` (or ``KERNEL_KAFKA_SECURITY=sasl_ssl``) runs the broker
with one client listener, ``SASL_SSL`` with SCRAM-SHA-512, and KRaft's
``StandardAuthorizer`` (deny when no ACL matches). What it needs lives under
``<kafka home>/``:

- ``tls/``: a local CA (``ca.p12``, and ``ca.pem`` for librdkafka and Python's
  ``ssl``), the broker's key and a certificate for ``localhost``/``127.0.0.1``
  signed by that CA (``broker.p12``), and a truststore holding the CA
  (``truststore.p12``) for Java clients. All made with ``keytool`` once.
- ``secrets/<principal>.password``: a generated password per principal
  (mode 0600). The SCRAM credentials are written into the cluster's metadata
  when the storage is formatted (``kafka-storage format --add-scram``), so the
  broker accepts them from its first second; no plaintext bootstrap window.

The controller listener speaks SASL_PLAINTEXT with PLAIN on 127.0.0.1 (KRaft
controllers cannot authenticate with SCRAM: the credentials live in the
metadata they serve); only the broker's own principal is configured on it.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ops.stack.errors import MissingToolError, StackError

__all__ = ["BROKER_PRINCIPAL", "MECHANISM", "BrokerSecurity"]

MECHANISM = "SCRAM-SHA-512"
BROKER_PRINCIPAL = "kernel-broker"  # the broker's own identity (inter-broker, controller)
_KEYTOOL_HINT = "install a JDK with keytool, e.g. `apt-get install openjdk-17-jre-headless`"


@dataclass(frozen=True)
class BrokerSecurity:
    """SASL_SSL material of one broker home: TLS files and one password per principal."""

    home: Path
    principals: tuple[str, ...]  # SCRAM users created at format time
    super_users: tuple[str, ...]  # besides the broker itself

    @property
    def tls_dir(self) -> Path:
        return self.home / "tls"

    @property
    def ca_pem(self) -> Path:
        return self.tls_dir / "ca.pem"

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    def password_file(self, principal: str) -> Path:
        return self.secrets_dir / f"{principal}.password"

    def password(self, principal: str) -> str:
        path = self.password_file(principal)
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            raise StackError(
                f"no password for the Kafka principal {principal!r} in {self.secrets_dir}: "
                "the secured stack makes one per principal it knows "
                f"({', '.join(self.principals)}) when `kernel up --secure` first starts it"
            ) from None

    def _ensure_password(self, principal: str) -> None:
        path = self.password_file(principal)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(24))

    def client(self, principal: str, *, password: bool = True) -> dict[str, str]:
        """librdkafka settings of ``principal`` on this broker (``password``: with its own)."""
        conf = {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": MECHANISM,
            "sasl.username": principal,
            "ssl.ca.location": str(self.ca_pem),
        }
        if password:
            conf["sasl.password"] = self.password(principal)
        return conf

    # -- preparation ---------------------------------------------------------------
    def prepare(self) -> None:
        """Make the CA, keystores and passwords unless they exist (idempotent)."""
        for p in (BROKER_PRINCIPAL, *self.principals):
            self._ensure_password(p)
        if not (self.tls_dir / ".complete").exists():
            _make_tls(self.tls_dir)

    def format_args(self) -> list[str]:
        """``kafka-storage format`` arguments creating every principal's SCRAM credential."""
        out: list[str] = []
        for p in (BROKER_PRINCIPAL, *self.principals):
            out += ["--add-scram", f"{MECHANISM}=[name={p},password={self.password(p)}]"]
        return out

    def server_properties(self, port: int, controller_port: int) -> list[str]:
        store = (self.tls_dir / "store.password").read_text().strip()
        broker = self.password(BROKER_PRINCIPAL)
        supers = ";".join(f"User:{u}" for u in (BROKER_PRINCIPAL, *self.super_users))
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        return [
            f"listeners=SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=SASL_SSL://127.0.0.1:{port}",
            "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT",
            "inter.broker.listener.name=SASL_SSL",
            f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
            "sasl.mechanism.controller.protocol=PLAIN",
            f"listener.name.sasl_ssl.sasl.enabled.mechanisms={MECHANISM}",
            f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config={scram} required "
            f'username="{BROKER_PRINCIPAL}" password="{broker}";',
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            f"listener.name.controller.plain.sasl.jaas.config={plain} required "
            f'username="{BROKER_PRINCIPAL}" password="{broker}" '
            f'user_{BROKER_PRINCIPAL}="{broker}";',
            f"ssl.keystore.location={self.tls_dir / 'broker.p12'}",
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.password={store}",
            f"ssl.key.password={store}",
            f"ssl.truststore.location={self.tls_dir / 'truststore.p12'}",
            "ssl.truststore.type=PKCS12",
            f"ssl.truststore.password={store}",
            "ssl.client.auth=none",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users={supers}",
            "allow.everyone.if.no.acl.found=false",
        ]


def _keytool() -> str:
    keytool = shutil.which("keytool")
    if keytool is None:
        raise MissingToolError(f"keytool was not found: {_KEYTOOL_HINT}")
    return keytool


def _make_tls(tls: Path) -> None:
    """A local CA and the broker's CA-signed certificate, in PKCS#12 stores.

    EC P-256 keys (fast to make); the broker's certificate names ``localhost``
    and ``127.0.0.1`` so clients verify the hostname. Independent keytool runs
    go in parallel: each is a JVM start.
    """
    shutil.rmtree(tls, ignore_errors=True)
    tls.mkdir(parents=True, mode=0o700)
    store = secrets.token_urlsafe(18)
    (tls / "store.password").touch(mode=0o600)
    (tls / "store.password").write_text(store)
    ca, broker, trust = tls / "ca.p12", tls / "broker.p12", tls / "truststore.p12"
    pw = ["-storepass", store, "-keypass", store]
    ec = ["-keyalg", "EC", "-groupname", "secp256r1", "-storetype", "PKCS12"]

    def stage(*runs: Sequence[str]) -> None:
        with ThreadPoolExecutor(len(runs)) as pool:
            list(pool.map(_run_keytool, runs))

    ca_dn, broker_dn = "CN=kernel-local-ca,O=Kernel", "CN=localhost,O=Kernel"
    stage(
        ["-genkeypair", "-alias", "ca", *ec, "-dname", ca_dn, "-ext", "bc:c",
         "-validity", "3650", "-keystore", str(ca), *pw],
        ["-genkeypair", "-alias", "broker", *ec, "-dname", broker_dn,
         "-validity", "825", "-keystore", str(broker), *pw],
    )  # fmt: skip
    stage(
        ["-exportcert", "-rfc", "-alias", "ca", "-keystore", str(ca), "-storepass", store,
         "-file", str(tls / "ca.pem")],
        ["-certreq", "-alias", "broker", "-keystore", str(broker), "-storepass", store,
         "-file", str(tls / "broker.csr")],
    )  # fmt: skip
    stage(
        ["-gencert", "-alias", "ca", "-keystore", str(ca), "-storepass", store, "-rfc",
         "-infile", str(tls / "broker.csr"), "-outfile", str(tls / "broker.pem"),
         "-ext", "SAN=dns:localhost,ip:127.0.0.1", "-ext", "EKU=serverAuth,clientAuth",
         "-validity", "825"],
        ["-importcert", "-noprompt", "-alias", "ca", "-file", str(tls / "ca.pem"),
         "-storetype", "PKCS12", "-keystore", str(trust), "-storepass", store],
        ["-importcert", "-noprompt", "-alias", "ca", "-file", str(tls / "ca.pem"),
         "-keystore", str(broker), "-storepass", store],
    )  # fmt: skip
    stage(
        ["-importcert", "-noprompt", "-alias", "broker", "-file", str(tls / "broker.pem"),
         "-keystore", str(broker), "-storepass", store],
    )  # fmt: skip
    (tls / ".complete").write_text("ok\n")


def _run_keytool(args: Sequence[str]) -> None:
    # keytool is a JVM: the client compiler only starts it in half the time.
    argv = [_keytool(), "-J-XX:TieredStopAtLevel=1", *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise StackError(f"keytool {args[0]} failed:\n{done.stdout}{done.stderr}")
