"""The pipeline over SASL_SSL, each worker as its own principal, on a secured broker.

The module starts its own broker (``kernel up --secure``'s: TLS from keytool,
SCRAM-SHA-512 users made at format time, the StandardAuthorizer denying what
no ACL allows) next to the session's plaintext test stack, whose Postgres it
uses. The admin creates the topics and applies the ACL table
(:mod:`ops.kafka_acls`); every other Kernel connects with one principal's
credentials, as a deployment's processes would (``KERNEL_KAFKA_*``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
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
from streams.kafka.async_producer import AsyncProducer
from tests.integration.core.test_producer import _actions
from tests.integration.sentinel.test_stream_runner import DENY_BIG, activate

SECURE_PORT = int(
    os.environ.get("KERNEL_TEST_KAFKA_SECURE_PORT")
    or int(os.environ.get("KERNEL_TEST_KAFKA_PORT", "29092")) + 2  # +3: its controller
)


@pytest.fixture(scope="module")
def secure_broker(base_settings: Settings) -> Iterator[KafkaServer]:
    broker = KafkaServer(
        base_settings.state_dir,
        SECURE_PORT,
        base_settings.kafka_home,
        secure=True,
        principals=tuple(PRINCIPALS),
        name="kafka-sasl-test",
        heap="512m",
        quick_jvm=True,
    )
    broker.stop()  # a broker a killed run left behind
    for stale in ("data", "secrets", "listener"):  # a new cluster; the CA is kept
        path = broker.home / stale
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    broker.start(timeout_s=90)
    yield broker
    broker.stop()
    shutil.rmtree(broker.home / "data", ignore_errors=True)


@pytest.fixture
def admin(
    secure_broker: KafkaServer, stack: LocalStack, database_url: str, tmp_path: Path
) -> Kernel:
    """The operator: topics and ACLs of a fresh prefix, a migrated database, a key."""
    migrate(database_url)
    settings = replace(
        stack.settings,
        topic_prefix=f"s{uuid.uuid4().hex[:12]}.",
        bootstrap_servers=secure_broker.bootstrap,
        postgres_url=database_url,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username=ADMIN,
        kafka_sasl_password_file=secure_broker.password_file(ADMIN),
        kafka_ssl_ca_location=secure_broker.security.ca_pem,  # type: ignore[union-attr]
        signing_key=generate_key(tmp_path / "keys", "sasl-signer"),
        signer_id="sasl-signer",
        checkpoint_every=5,
        state_dir=tmp_path,
        publish_timeout_s=5.0,
    )
    kernel = Kernel(settings)
    kernel.topic_admin().ensure()
    assert kernel.kafka_acls().apply(grants(kernel.names)) == len(grants(kernel.names))
    return kernel


def as_principal(admin: Kernel, broker: KafkaServer, user: str) -> Kernel:
    return Kernel(
        replace(
            admin.settings,
            kafka_sasl_username=user,
            kafka_sasl_password_file=broker.password_file(user),
        )
    )


def test_the_pipeline_runs_with_each_worker_as_its_own_principal(
    admin: Kernel, secure_broker: KafkaServer
) -> None:
    def kernel(user: str) -> Kernel:
        return as_principal(admin, secure_broker, user)

    assert kernel("kernel-signer").kafka.security["security.protocol"] == "SASL_SSL"
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
            kernel("kernel-signer").chain_signer(),
            kernel("kernel-checkpointer").checkpointer(),
            kernel("kernel-projector").audit_projector(),
        ]
        try:
            return [runner.run_until_idle(idle_s=0.5) for runner in runners]
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
