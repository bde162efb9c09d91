"""The pipeline over SASL_SSL, each worker as its own principal, on a secured broker.

The module runs ``kernel up --secure`` in a state directory of its own, next to
the session's plaintext test stack, whose Postgres it uses: TLS from keytool,
SCRAM-SHA-512 users made at format time, the StandardAuthorizer denying what no
ACL allows. The admin, configured with the variables that command prints,
creates the topics and applies the ACL table (:mod:`ops.kafka_acls`); every
other Kernel connects with one principal's credentials, as a deployment's
processes would (``KERNEL_KAFKA_*``), the signer as on the local stack (a user
name only).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from ops.bootstrap import Kernel
from ops.config import Settings
from ops.kafka_acls import ADMIN, PRINCIPALS, grants
from ops.stack import LocalStack
from ops.stack.kafka_server import KafkaServer
from projections.migrate import migrate
from replay.audit_postgres import iter_rows
from replay.verify import ChainVerifier
from schemas.errors import KernelError
from streams.chain.keys import generate_key, load_signer, parse_signers, signers_document
from streams.kafka.acls import Grant
from streams.kafka.async_producer import AsyncProducer
from streams.remediation.machine import request_event
from tests.integration.core.test_producer import _actions
from tests.integration.sentinel.test_stream_runner import DENY_BIG, activate

SECURE_PORT = int(
    os.environ.get("KERNEL_TEST_KAFKA_SECURE_PORT")
    or int(os.environ.get("KERNEL_TEST_KAFKA_PORT", "29092")) + 2  # +3: its controller
)


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def secure_env(stack: LocalStack, base_settings: Settings) -> Iterator[dict[str, str]]:
    """``kernel up --secure`` in a state directory of its own (sharing the Maven cache);
    yields the environment it prints (the admin's), and ``kernel down`` at the end."""
    state = base_settings.state_dir / "sasl"
    state.mkdir(parents=True, exist_ok=True)
    if not (state / "cache").exists():
        (state / "cache").symlink_to(base_settings.state_dir / "cache")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KERNEL_", "POSTGRES_URL"))}
    env |= {
        "KERNEL_STATE_DIR": str(state),
        "KERNEL_KAFKA_PORT": str(SECURE_PORT),
        "POSTGRES_URL": base_settings.database_url,  # the session's: only Kafka is managed
        "KERNEL_FAST_JVM": "1",  # a broker that lives as long as this module
    }
    secured = env | {"KERNEL_KAFKA_SECURITY": "sasl_ssl"}
    _cli(secured, "down")  # a broker a killed run left behind
    home = state / "kafka"
    for stale in ("data", "secrets"):  # a new cluster and users; the CA is kept
        shutil.rmtree(home / stale, ignore_errors=True)
    (home / "listener").unlink(missing_ok=True)
    out = _cli(env, "up", "--secure")
    exports = dict(
        line.removeprefix("export ").split("=", 1)
        for line in out.splitlines()
        if line.startswith("export ")
    )
    assert exports["KERNEL_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert exports["KERNEL_KAFKA_SASL_USERNAME"] == ADMIN
    yield env | exports
    _cli(secured, "down")
    shutil.rmtree(home / "data", ignore_errors=True)


@pytest.fixture(scope="module")
def secure_broker(secure_env: dict[str, str]) -> KafkaServer:
    """The secured broker's files (passwords, CA), as the stack names them."""
    env = {k: v for k, v in secure_env.items() if k != "KERNEL_BOOTSTRAP_SERVERS"}
    return Kernel(Settings.from_env(env)).stack().kafka


@pytest.fixture
def admin(secure_env: dict[str, str], database_url: str, tmp_path: Path) -> Kernel:
    """The operator, configured with what ``kernel up --secure`` printed: topics and ACLs
    of a fresh prefix, a migrated database, a signing key."""
    migrate(database_url)
    settings = replace(
        Settings.from_env(secure_env),
        topic_prefix=f"s{uuid.uuid4().hex[:12]}.",
        postgres_url=database_url,
        signing_key=generate_key(tmp_path / "keys", "sasl-signer"),
        signer_id="sasl-signer",
        checkpoint_every=5,
        state_dir=tmp_path,
        publish_timeout_s=5.0,
    )
    kernel = Kernel(settings)
    assert kernel.kafka.security["sasl.username"] == ADMIN
    kernel.topic_admin().ensure()
    assert kernel.kafka_acls().apply(grants(kernel.names)) == len(grants(kernel.names))
    return kernel


def as_principal(admin: Kernel, broker: KafkaServer, user: str) -> Kernel:
    """``user`` configured as a remote process would be: its own password file."""
    return Kernel(
        replace(
            admin.settings,
            kafka_sasl_username=user,
            kafka_sasl_password_file=broker.password_file(user),
        )
    )


def on_the_local_stack(admin: Kernel, broker: KafkaServer, user: str) -> Kernel:
    """``user`` configured as on the secured local stack: KERNEL_KAFKA_SECURITY=sasl_ssl
    and a user name; the protocol, CA and password come from the stack."""
    s = admin.settings
    return Kernel(
        replace(
            s,
            state_dir=broker.state_dir,
            kafka_port=broker.port,
            bootstrap_servers=None,
            kafka_stack_secure=True,
            kafka_security_protocol=None,
            kafka_sasl_mechanism=None,
            kafka_sasl_password_file=None,
            kafka_ssl_ca_location=None,
            kafka_sasl_username=user,
        )
    )


def test_the_pipeline_runs_with_each_worker_as_its_own_principal(
    admin: Kernel, secure_broker: KafkaServer
) -> None:
    def kernel(user: str) -> Kernel:
        return as_principal(admin, secure_broker, user)

    local_signer = on_the_local_stack(admin, secure_broker, "kernel-signer")
    assert local_signer.kafka.security["security.protocol"] == "SASL_SSL"
    admin.producer().publish_batch(activate(DENY_BIG))  # policies: the operator's
    actions = _actions(7, "acct-a") + [
        replace(e, body={**e.body, "action": "payments.send", "context": {"amount": 5000}})
        for e in _actions(3, "acct-b")
    ]
    producer = kernel("kernel-producer").producer(transactional_id=f"kernel-publish-{uuid.uuid4()}")
    producer.publish_atomic(actions)

    def run_pipeline() -> list[int]:
        runners = [
            kernel("kernel-sentinel").sentinel(),
            local_signer.chain_signer(),
            kernel("kernel-checkpointer").checkpointer(),
            kernel("kernel-projector").audit_projector(),
        ]
        try:
            return [runner.run_until_idle(idle_s=0.2) for runner in runners]
        finally:
            for runner in runners:
                runner.close()

    # 10 actions decided; 4 policy changes + 10 actions + 10 decisions chained
    assert run_pipeline()[:2] == [10, 24]
    # Fresh runners recover their state from the log (reads by assignment) and go on.
    producer.publish_atomic(_actions(4, "acct-a"))
    assert run_pipeline()[:2] == [4, 8]

    signer = load_signer(admin.settings.signing_key)  # type: ignore[arg-type]
    verifiers = parse_signers(signers_document([(signer.signer_id, signer.public_key)]))
    with psycopg.connect(admin.settings.database_url) as conn:
        report = ChainVerifier(verifiers).feed_all(iter_rows(conn))
        denied = conn.execute(
            "SELECT count(*) FROM audit_events WHERE payload->'body'->>'decision' = 'deny'"
        ).fetchone()
        checkpoints = conn.execute("SELECT count(*) FROM audit_checkpoints").fetchone()
    assert report.ok, json.dumps(report.to_json())
    assert report.total == 32
    assert denied == (3,)
    assert checkpoints is not None and checkpoints[0] > 0


def test_a_principal_without_the_acl_is_refused_promptly(
    admin: Kernel, secure_broker: KafkaServer
) -> None:
    producer = as_principal(admin, secure_broker, "kernel-producer")
    signer_txn = f"{admin.names.prefix}chain-signer-0"
    started = time.monotonic()
    with pytest.raises(KernelError, match="Topic authorization failed"):
        producer.producer().publish_encoded([(admin.names.chain, b"forged", b"link")])
    with pytest.raises(KernelError, match="Topic authorization failed"):
        producer.producer().publish_batch(activate(DENY_BIG))  # policies: not its topic
    with pytest.raises(KernelError, match="Transactional Id authorization failed"):
        producer.producer(transactional_id=signer_txn).publish_atomic(_actions(1))
    with pytest.raises(KernelError, match="authorization failed"):  # reads nothing
        producer.log_reader(timeout_s=5).read(admin.names.chain, 0, 0, 10)
    with pytest.raises(KernelError, match="not authorized"):  # does not see the topic
        producer.log_reader(timeout_s=5).read(admin.names.chain, 0, 0)
    assert time.monotonic() - started < 15, "a refusal is an error, not a wait for a timeout"


def test_the_asyncio_producer_speaks_sasl_ssl_with_scram(
    admin: Kernel, secure_broker: KafkaServer
) -> None:
    """aiokafka takes TLS as an SSLContext built from the CA file, SCRAM as its own args."""
    producer = as_principal(admin, secure_broker, "kernel-producer")

    async def publish(topic: str | None) -> object:
        async with AsyncProducer(
            producer.kafka, codec=producer.codec, names=producer.names, timeout_s=5
        ) as aio:
            return await aio.publish(_actions(1, "aio")[0], topic)

    assert asyncio.run(publish(None)).topic == admin.names.actions  # type: ignore[attr-defined]
    with pytest.raises(KernelError, match="TopicAuthorizationFailed"):
        asyncio.run(publish(admin.names.chain))


def test_prune_takes_back_a_right_the_table_does_not_give(
    admin: Kernel, secure_broker: KafkaServer
) -> None:
    acls, table = admin.kafka_acls(), grants(admin.names)
    extra = Grant("kernel-producer", "topic", admin.names.chain, "read")
    acls.apply([extra])
    producer = as_principal(admin, secure_broker, "kernel-producer")
    assert producer.log_reader(timeout_s=5).end_offset(admin.names.chain, 0) == 0  # sees it
    assert acls.prune(table, PRINCIPALS, admin.names.prefix) == [str(extra.binding())]
    assert str(extra.binding()) not in acls.existing("kernel-producer")
    assert acls.prune(table, PRINCIPALS, admin.names.prefix) == []


def test_the_remediation_worker_runs_as_its_own_principal(
    admin: Kernel, secure_broker: KafkaServer, tmp_path: Path
) -> None:
    """Its ACLs (ops/kafka_acls.py) cover its recovery, inputs, outputs and transactions."""
    actions = tmp_path / "actions.json"
    actions.write_text(json.dumps({"quarantine": {"type": "quarantine"}}))
    remediation = as_principal(admin, secure_broker, "kernel-remediation")
    remediation = Kernel(replace(remediation.settings, remediation_actions=actions))
    request = request_event(
        decision_id="d1", action="quarantine", subject="acct-q", actor="operator:t",
        reason="test", high_risk=False, ts_ms=int(time.time() * 1000),
    )  # fmt: skip
    admin.producer().publish(request)
    runner = remediation.remediation()
    try:
        runner.run_until_idle(idle_s=0.3)
    finally:
        runner.close()
    reader = admin.log_reader(timeout_s=5)
    topic = admin.names.for_event_type("remediation")
    steps = [r.event.body["status"] for r in reader.read(topic, 0, 0, None)]
    assert steps == ["requested", "approved", "started", "applied"]
    (quarantine,) = [
        r.event
        for p in reader.partitions(admin.names.actions)
        for r in reader.read(admin.names.actions, p, 0, None)
    ]
    reader.close()
    assert (quarantine.subject, quarantine.body["action"]) == ("acct-q", "kernel.quarantine")
