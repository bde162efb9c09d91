"""Settings from the environment (12-factor), read once by the composition root.

Every variable is documented in README.md and in ``docs/configuration.md``
(rendered from :data:`ENV_VARS` by :mod:`ops.config_doc`; a test keeps it
current); another test checks that compose.yaml names only variables that exist here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from schemas.contract import InputContract
from schemas.errors import ConfigError

__all__ = ["DATABASE_ROLE_VARS", "ENV_VARS", "Settings", "default_state_dir", "instance_id_token"]

# name -> one-line meaning; the single list of what configures Kernel.
ENV_VARS: dict[str, str] = {
    "KERNEL_STATE_DIR": "where the local stack keeps data, logs and download caches",
    "KERNEL_BOOTSTRAP_SERVERS": "Kafka bootstrap servers (host:port,...); unset: the local stack",
    "KERNEL_KAFKA_PORT": "port of the local Kafka broker (default 19092; controller is +1)",
    "KAFKA_HOME": "an unpacked Apache Kafka distribution to run instead of the Maven artifacts",
    "POSTGRES_URL": "Postgres connection URL; unset: a private cluster of the local stack",
    "KERNEL_PG_PORT": "port of the local Postgres cluster (default 15432)",
    "KERNEL_TOPIC_PREFIX": "prefix of every topic name (default 'kernel.')",
    "KERNEL_SCHEMA_REGISTRY_URL": (
        "URL of a Confluent-compatible schema registry: records are Confluent framed "
        "(00 + schema id); unset: Avro single-object encoding (C3 01 + fingerprint)"
    ),
    "KERNEL_MAX_EVENT_BYTES": "largest accepted event, as JSON (default 262144 = 256 KiB)",
    "KERNEL_MAX_RECORD_BYTES": "largest Kafka record Kernel writes (default 1000000)",
    "KERNEL_MAX_JSON_DEPTH": "deepest accepted JSON nesting, the event being 1 (default 32)",
    "KERNEL_MAX_STRING_BYTES": "longest accepted string in an event, UTF-8 (default 65536)",
    "KERNEL_MAX_ARRAY_ITEMS": "most items of an array or members of an object (default 10000)",
    "KERNEL_TS_FUTURE_SKEW_S": "how far in the future an event's ts may be (default 3600)",
    "KERNEL_PUBLISH_TIMEOUT_S": "bounded wait for Kafka to acknowledge a publish (default 10)",
    "KERNEL_PG_CONNECT_TIMEOUT_S": "bounded wait for a Postgres connection (default 10)",
    "KERNEL_PG_STATEMENT_TIMEOUT_S": "longest statement of a projector (default 30)",
    "KERNEL_PG_KEEPALIVE_S": "TCP keepalive idle seconds of Postgres connections (default 10)",
    "KERNEL_SIGNING_KEY": "path of the Ed25519 signing key file of the chain signer",
    "KERNEL_SIGNER_ID": "signerId recorded with every signature (default kernel-signer)",
    # -- signing through an HSM (issue 11.5)
    "KERNEL_SIGNER_BACKEND": (
        "'file' (default: the Ed25519 key file) or 'pkcs11' (a key inside a PKCS#11 token; "
        "what KERNEL_ENV=production requires)"
    ),
    "KERNEL_PKCS11_MODULE": (
        "path of the PKCS#11 module (.so), e.g. SoftHSM2's /usr/lib/softhsm/libsofthsm2.so"
    ),
    "KERNEL_PKCS11_TOKEN_LABEL": "label of the token holding the signing key (default kernel)",
    "KERNEL_PKCS11_KEY_LABEL": "label of the Ed25519 key pair in the token (default: signerId)",
    "KERNEL_PKCS11_PIN": "user PIN of the token (secret; prefer KERNEL_PKCS11_PIN_FILE)",
    "KERNEL_PKCS11_PIN_FILE": "file holding the token's user PIN (read at startup, never logged)",
    # -- end of issue 11.5
    # -- signed release artifacts (issue 11.7)
    "KERNEL_RELEASE_KEY": "key file that `kernel release` signs the release manifest with",
    "KERNEL_RELEASE_SIGNER_ID": (
        "signerId of the release key (default kernel-release): its key file in "
        "KERNEL_STATE_DIR/keys, or its key's label in the PKCS#11 token"
    ),
    # -- end of issue 11.7
    "KERNEL_CHECKPOINT_EVERY": "links between signed Merkle checkpoints of a chain (default 1000)",
    "KERNEL_CHECKPOINT_INTERVAL_S": "or seconds of event time between checkpoints (default 60)",
    "KERNEL_CHECK_BUDGET_MS": "time budget of POST /sentinel/check (default 200)",
    "KERNEL_API_HOST": "address the HTTP API binds (default 127.0.0.1)",
    "KERNEL_API_PORT": "port the HTTP API binds (default 8080)",
    "KERNEL_METRICS_PORT": "port of a worker's Prometheus /metrics (default 9100; 0 = off)",
    "KERNEL_TRACING": "1: producers start W3C traces (traceparent header); always propagated "
    "(default: 1 when OTEL_EXPORTER_OTLP_ENDPOINT is set, else 0)",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "OpenTelemetry collector (OTLP over HTTP, e.g. "
    "http://127.0.0.1:4318): every process exports its spans there; unset: none are recorded",
    "KERNEL_ENV": "'development' (default) or 'production' (refuses local keys: signs via PKCS#11)",
    "KERNEL_LAG_GROUPS": "extra consumer groups the lag monitor watches, comma-separated",
    "KERNEL_LAG_INTERVAL_S": "seconds between lag samples (default 15)",
    "KERNEL_LAG_WINDOW_S": "lag status window; STOP after this long stuck (default 300)",
    "KERNEL_LAG_STALL_AFTER_S": "STALL after this long stuck (default 60)",
    "KERNEL_READY_MAX_LAG_S": "readiness fails past this lag in seconds (default: lag window)",
    "KERNEL_LAG_ALLOWED": "lag in offsets that is never a problem (default 0)",
    "KERNEL_INSTANCE_ID": "instance id in each worker's group (default 0; kernel run --instance)",
    "KERNEL_HEALTH_MAX_AGE_S": "a worker's /health fails when its heartbeat is older (default 60)",
    "KERNEL_AUDITOR_INTERVAL_S": "seconds between the auditor's verification rounds (default 30)",
    "KERNEL_AUDITOR_FULL_EVERY": "every Nth auditor round re-verifies every row (default 10)",
    "KERNEL_SIGNERS_FILE": "signers.json the auditor verifies with (default: the state dir keys)",
    # -- Kafka security (issue 11.3)
    "KERNEL_KAFKA_SECURITY": (
        "the local stack's broker: 'plaintext' (default) or 'sasl_ssl' (TLS, SCRAM users, "
        "ACLs; kernel up --secure); its clients default to kernel-admin and the stack's CA"
    ),
    "KERNEL_KAFKA_SECURITY_PROTOCOL": "Kafka clients' security.protocol (e.g. SASL_SSL)",
    "KERNEL_KAFKA_SASL_MECHANISM": "SASL mechanism of the Kafka clients (default SCRAM-SHA-512)",
    "KERNEL_KAFKA_SASL_USERNAME": "SASL user (the Kafka principal) this process connects as",
    "KERNEL_KAFKA_SASL_PASSWORD": "its password (prefer KERNEL_KAFKA_SASL_PASSWORD_FILE)",
    "KERNEL_KAFKA_SASL_PASSWORD_FILE": "a file holding the SASL password",
    "KERNEL_KAFKA_SSL_CA_LOCATION": "PEM file of the CA(s) the Kafka clients trust",
    "KERNEL_KAFKA_SSL_CERT_LOCATION": "PEM client certificate (mutual TLS), with the key below",
    "KERNEL_KAFKA_SSL_KEY_LOCATION": "PEM private key of that client certificate",
    # -- API identity (issue 11.1)
    "KERNEL_TOKENS_FILE": "hashed bearer tokens of the API (default <state dir>/tokens.json)",
    "KERNEL_ROLES_FILE": "roles of certificate identities: JSON {identities: {cert:X: [roles]}}",
    "KERNEL_API_TLS_CERT": "PEM certificate (chain) the API serves TLS with; unset: plaintext",
    "KERNEL_API_TLS_KEY": "PEM private key of KERNEL_API_TLS_CERT",
    "KERNEL_API_CLIENT_CA": "PEM CA bundle client certificates are verified against (mTLS)",
    # -- Postgres roles (issue 11.4): each process connects as its own role
    "KERNEL_DATABASE_URL_MIGRATE": "URL of the migrations owner (`kernel db migrate`); "
    "unset: POSTGRES_URL",
    "KERNEL_DATABASE_URL_API": "URL of the API's role (SELECT only); unset: POSTGRES_URL",
    "KERNEL_DATABASE_URL_AUDIT_PROJECTOR": "URL of the audit projector's role (INSERT only); "
    "unset: POSTGRES_URL",
    "KERNEL_DATABASE_URL_SENTINEL_PROJECTOR": "URL of the sentinel projector's role; "
    "unset: POSTGRES_URL",
    "KERNEL_DATABASE_URL_AUDITOR": "URL of the auditor's role (reads the audit tables); "
    "unset: POSTGRES_URL",
}

# -- Postgres roles (issue 11.4): Kernel.database(role) -> the variable naming its URL
DATABASE_ROLE_VARS: dict[str, str] = {
    "migrate": "KERNEL_DATABASE_URL_MIGRATE",
    "api": "KERNEL_DATABASE_URL_API",
    "audit_projector": "KERNEL_DATABASE_URL_AUDIT_PROJECTOR",
    "sentinel_projector": "KERNEL_DATABASE_URL_SENTINEL_PROJECTOR",
    "auditor": "KERNEL_DATABASE_URL_AUDITOR",
}


def _path(env: dict[str, str], name: str) -> Path | None:
    return Path(env[name]) if env.get(name) else None


def default_state_dir() -> Path:
    """Outside the repository: /var/lib/kernel for root, XDG state dir otherwise.

    Root gets a system path because the private Postgres cluster runs as the
    unprivileged ``postgres`` user, which cannot traverse /root.
    """
    if os.geteuid() == 0:
        return Path("/var/lib/kernel")
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "kernel"


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def instance_id_token(raw: str) -> str:
    """Part of a transactional and a static-membership id: keep it a plain token."""
    if not raw or len(raw) > 64 or not all(c.isalnum() or c in "-_." for c in raw):
        raise ConfigError(
            f"KERNEL_INSTANCE_ID must be 1-64 letters, digits, '-', '_' or '.', got {raw!r}"
        )
    return raw


def _non_negative(env: dict[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 0:
        raise ConfigError(f"{name} must be 0 or more, got {value}")
    return value


# -- signing through an HSM (issue 11.5)
def _signer_backend(env: dict[str, str]) -> str:
    backend = env.get("KERNEL_SIGNER_BACKEND") or "file"
    if backend not in ("file", "pkcs11"):
        raise ConfigError(f"KERNEL_SIGNER_BACKEND must be file or pkcs11, got {backend!r}")
    return backend


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    kafka_port: int = 19092
    pg_port: int = 15432
    bootstrap_servers: str | None = None
    postgres_url: str | None = None
    kafka_home: Path | None = None
    topic_prefix: str = "kernel."
    schema_registry_url: str | None = None
    max_event_bytes: int = 256 * 1024
    max_record_bytes: int = 1_000_000
    max_json_depth: int = 32
    max_string_bytes: int = 65536
    max_array_items: int = 10_000
    ts_future_skew_s: int = 3600
    publish_timeout_s: float = 10.0
    pg_connect_timeout_s: int = 10
    pg_statement_timeout_s: int = 30
    pg_keepalive_s: int = 10
    signing_key: Path | None = None
    signer_id: str = "kernel-signer"
    # -- signing through an HSM (issue 11.5)
    signer_backend: str = "file"
    pkcs11_module: str | None = None
    pkcs11_token_label: str = "kernel"  # noqa: S105 (a label, not a secret)
    pkcs11_key_label: str | None = None
    pkcs11_pin: str | None = field(default=None, repr=False)  # secret
    pkcs11_pin_file: Path | None = None
    # -- end of issue 11.5
    # -- signed release artifacts (issue 11.7)
    release_key: Path | None = None
    release_signer_id: str = "kernel-release"
    # -- end of issue 11.7
    checkpoint_every: int = 1000
    checkpoint_interval_s: int = 60
    check_budget_ms: int = 200
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    metrics_port: int = 9100
    environment: str = "development"
    tracing: bool = False
    otlp_endpoint: str | None = None
    instance_id: str = "0"
    health_max_age_s: float = 60.0
    auditor_interval_s: float = 30.0
    auditor_full_every: int = 10
    signers_file: Path | None = None
    dedup_window: int = 10_000  # offsets of an input partition a duplicate eventId is refused in
    # -- Kafka security (issue 11.3)
    kafka_stack_secure: bool = False
    kafka_security_protocol: str | None = None
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = field(default=None, repr=False)
    kafka_sasl_password_file: Path | None = None
    kafka_ssl_ca_location: Path | None = None
    kafka_ssl_cert_location: Path | None = None
    kafka_ssl_key_location: Path | None = None
    # -- API identity (issue 11.1)
    tokens_file_path: Path | None = None
    roles_file: Path | None = None
    api_tls_cert: Path | None = None
    api_tls_key: Path | None = None
    api_client_ca: Path | None = None
    # -- Postgres roles (issue 11.4): Kernel role -> URL (DATABASE_ROLE_VARS); absent: POSTGRES_URL
    role_database_urls: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = dict(os.environ if env is None else env)
        state = Path(e["KERNEL_STATE_DIR"]) if e.get("KERNEL_STATE_DIR") else default_state_dir()
        environment = e.get("KERNEL_ENV", "development")
        if environment not in ("development", "production"):
            raise ConfigError(f"KERNEL_ENV must be development or production, got {environment!r}")
        settings = cls(
            state_dir=state,
            kafka_port=_int(e, "KERNEL_KAFKA_PORT", 19092),
            pg_port=_int(e, "KERNEL_PG_PORT", 15432),
            bootstrap_servers=e.get("KERNEL_BOOTSTRAP_SERVERS") or None,
            postgres_url=e.get("POSTGRES_URL") or None,
            kafka_home=Path(e["KAFKA_HOME"]) if e.get("KAFKA_HOME") else None,
            topic_prefix=e.get("KERNEL_TOPIC_PREFIX", "kernel."),
            schema_registry_url=e.get("KERNEL_SCHEMA_REGISTRY_URL") or None,
            max_event_bytes=_int(e, "KERNEL_MAX_EVENT_BYTES", 256 * 1024),
            max_record_bytes=_int(e, "KERNEL_MAX_RECORD_BYTES", 1_000_000),
            max_json_depth=_int(e, "KERNEL_MAX_JSON_DEPTH", 32),
            max_string_bytes=_int(e, "KERNEL_MAX_STRING_BYTES", 65536),
            max_array_items=_int(e, "KERNEL_MAX_ARRAY_ITEMS", 10_000),
            ts_future_skew_s=_int(e, "KERNEL_TS_FUTURE_SKEW_S", 3600),
            publish_timeout_s=float(_int(e, "KERNEL_PUBLISH_TIMEOUT_S", 10)),
            pg_connect_timeout_s=_int(e, "KERNEL_PG_CONNECT_TIMEOUT_S", 10),
            pg_statement_timeout_s=_int(e, "KERNEL_PG_STATEMENT_TIMEOUT_S", 30),
            pg_keepalive_s=_int(e, "KERNEL_PG_KEEPALIVE_S", 10),
            signing_key=Path(e["KERNEL_SIGNING_KEY"]) if e.get("KERNEL_SIGNING_KEY") else None,
            signer_id=e.get("KERNEL_SIGNER_ID", "kernel-signer"),
            # -- signing through an HSM (issue 11.5)
            signer_backend=_signer_backend(e),
            pkcs11_module=e.get("KERNEL_PKCS11_MODULE") or None,
            pkcs11_token_label=e.get("KERNEL_PKCS11_TOKEN_LABEL") or "kernel",
            pkcs11_key_label=e.get("KERNEL_PKCS11_KEY_LABEL") or None,
            pkcs11_pin=e.get("KERNEL_PKCS11_PIN") or None,
            pkcs11_pin_file=Path(e["KERNEL_PKCS11_PIN_FILE"])
            if e.get("KERNEL_PKCS11_PIN_FILE")
            else None,
            # -- end of issue 11.5
            # -- signed release artifacts (issue 11.7)
            release_key=_path(e, "KERNEL_RELEASE_KEY"),
            release_signer_id=e.get("KERNEL_RELEASE_SIGNER_ID") or "kernel-release",
            # -- end of issue 11.7
            checkpoint_every=_int(e, "KERNEL_CHECKPOINT_EVERY", 1000),
            checkpoint_interval_s=_int(e, "KERNEL_CHECKPOINT_INTERVAL_S", 60),
            check_budget_ms=_int(e, "KERNEL_CHECK_BUDGET_MS", 200),
            api_host=e.get("KERNEL_API_HOST", "127.0.0.1"),
            api_port=_int(e, "KERNEL_API_PORT", 8080),
            metrics_port=_int(e, "KERNEL_METRICS_PORT", 9100),
            environment=environment,
            tracing=_tracing(e),
            otlp_endpoint=e.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
            instance_id=instance_id_token(e.get("KERNEL_INSTANCE_ID") or "0"),
            health_max_age_s=float(_int(e, "KERNEL_HEALTH_MAX_AGE_S", 60)),
            auditor_interval_s=float(_int(e, "KERNEL_AUDITOR_INTERVAL_S", 30)),
            auditor_full_every=max(1, _int(e, "KERNEL_AUDITOR_FULL_EVERY", 10)),
            signers_file=Path(e["KERNEL_SIGNERS_FILE"]) if e.get("KERNEL_SIGNERS_FILE") else None,
            dedup_window=_non_negative(e, "KERNEL_DEDUP_WINDOW", 10_000),
            **_kafka_security(e),
            tokens_file_path=_path(e, "KERNEL_TOKENS_FILE"),
            roles_file=_path(e, "KERNEL_ROLES_FILE"),
            api_tls_cert=_path(e, "KERNEL_API_TLS_CERT"),
            api_tls_key=_path(e, "KERNEL_API_TLS_KEY"),
            api_client_ca=_path(e, "KERNEL_API_CLIENT_CA"),
            role_database_urls={r: e[v] for r, v in DATABASE_ROLE_VARS.items() if e.get(v)},
        )
        InputContract.from_settings(settings)  # refuses limits without headroom, at startup
        return settings

    def kafka_client_security(self) -> dict[str, str]:
        """The librdkafka security settings named in the environment (may be empty)."""
        out: dict[str, str] = {}
        if self.kafka_security_protocol:
            out["security.protocol"] = self.kafka_security_protocol
        if self.kafka_sasl_mechanism:
            out["sasl.mechanism"] = self.kafka_sasl_mechanism
        elif (self.kafka_security_protocol or "").startswith("SASL"):
            out["sasl.mechanism"] = "SCRAM-SHA-512"
        if self.kafka_sasl_username:
            out["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password is not None:
            out["sasl.password"] = self.kafka_sasl_password
        elif self.kafka_sasl_password_file is not None:
            out["sasl.password"] = _secret_file(
                self.kafka_sasl_password_file, "KERNEL_KAFKA_SASL_PASSWORD_FILE"
            )
        for key, path in (
            ("ssl.ca.location", self.kafka_ssl_ca_location),
            ("ssl.certificate.location", self.kafka_ssl_cert_location),
            ("ssl.key.location", self.kafka_ssl_key_location),
        ):
            if path is not None:
                out[key] = str(path)
        return out

    @property
    def kafka_bootstrap(self) -> str:
        return self.bootstrap_servers or f"127.0.0.1:{self.kafka_port}"

    @property
    def database_url(self) -> str:
        """POSTGRES_URL, or the local cluster's administrative URL (with its password)."""
        if self.postgres_url:
            return self.postgres_url
        from ops.stack.postgres_roles import local_url  # noqa: PLC0415

        return local_url(self.state_dir, self.pg_port)

    # -- Postgres roles (issue 11.4)
    def database_url_for(self, role: str) -> str:
        """The URL ``role`` connects with: its own variable, else :attr:`database_url`."""
        return self.role_database_urls.get(role) or self.database_url

    @property
    def tokens_file(self) -> Path:
        return self.tokens_file_path or self.state_dir / "tokens.json"

    @property
    def keys_dir(self) -> Path:
        return self.state_dir / "keys"


def _tracing(e: dict[str, str]) -> bool:
    """KERNEL_TRACING, on by default when spans are exported (what else would they show?)."""
    default = "1" if e.get("OTEL_EXPORTER_OTLP_ENDPOINT") else "0"
    return (e.get("KERNEL_TRACING") or default).lower() in ("1", "true", "yes", "on")


# -- Kafka security (issue 11.3)
_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


class _KafkaSecurity(TypedDict):
    kafka_stack_secure: bool
    kafka_security_protocol: str | None
    kafka_sasl_mechanism: str | None
    kafka_sasl_username: str | None
    kafka_sasl_password: str | None
    kafka_sasl_password_file: Path | None
    kafka_ssl_ca_location: Path | None
    kafka_ssl_cert_location: Path | None
    kafka_ssl_key_location: Path | None


def _kafka_security(e: dict[str, str]) -> _KafkaSecurity:
    stack = (e.get("KERNEL_KAFKA_SECURITY") or "plaintext").lower()
    if stack not in ("plaintext", "sasl_ssl"):
        raise ConfigError(f"KERNEL_KAFKA_SECURITY must be plaintext or sasl_ssl, got {stack!r}")
    protocol = (e.get("KERNEL_KAFKA_SECURITY_PROTOCOL") or "").upper() or None
    if protocol is not None and protocol not in _PROTOCOLS:
        raise ConfigError(
            f"KERNEL_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(_PROTOCOLS)}, "
            f"got {protocol!r}"
        )
    if e.get("KERNEL_KAFKA_SASL_PASSWORD") and e.get("KERNEL_KAFKA_SASL_PASSWORD_FILE"):
        raise ConfigError(
            "set KERNEL_KAFKA_SASL_PASSWORD or KERNEL_KAFKA_SASL_PASSWORD_FILE, not both"
        )

    def path(name: str) -> Path | None:
        return Path(e[name]) if e.get(name) else None

    cert, key = e.get("KERNEL_KAFKA_SSL_CERT_LOCATION"), e.get("KERNEL_KAFKA_SSL_KEY_LOCATION")
    if bool(cert) != bool(key):
        raise ConfigError(
            "a Kafka client certificate needs its key: set both KERNEL_KAFKA_SSL_CERT_LOCATION "
            "and KERNEL_KAFKA_SSL_KEY_LOCATION"
        )
    return {
        "kafka_stack_secure": stack == "sasl_ssl",
        "kafka_security_protocol": protocol,
        "kafka_sasl_mechanism": e.get("KERNEL_KAFKA_SASL_MECHANISM") or None,
        "kafka_sasl_username": e.get("KERNEL_KAFKA_SASL_USERNAME") or None,
        "kafka_sasl_password": e.get("KERNEL_KAFKA_SASL_PASSWORD") or None,
        "kafka_sasl_password_file": path("KERNEL_KAFKA_SASL_PASSWORD_FILE"),
        "kafka_ssl_ca_location": path("KERNEL_KAFKA_SSL_CA_LOCATION"),
        "kafka_ssl_cert_location": path("KERNEL_KAFKA_SSL_CERT_LOCATION"),
        "kafka_ssl_key_location": path("KERNEL_KAFKA_SSL_KEY_LOCATION"),
    }


def _secret_file(path: Path, name: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{name}={path} cannot be read: {exc.strerror or exc}") from exc
