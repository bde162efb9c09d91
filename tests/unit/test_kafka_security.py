"""Kafka security without a broker: the environment's mapping, the aiokafka
arguments, the local stack's defaults, the broker's properties, the ACL table."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from ops.bootstrap import Kernel
from ops.config import Settings
from ops.kafka_acls import ADMIN, PRINCIPALS, PUBLISH_TRANSACTIONS, grants
from ops.remediation.worker import RemediationWorker
from ops.stack.errors import StackError
from ops.stack.kafka_security import BROKER_PRINCIPAL, BrokerSecurity
from ops.stack.kafka_server import KafkaServer
from schemas.errors import ConfigError
from schemas.topics import TOPICS, TopicNames
from streams.chain.checkpointer import Checkpointer
from streams.chain.signer import ChainSigner
from streams.kafka.clients import KafkaClients
from streams.rollout.processor import PROCESSOR_NAME as ROLLOUT
from streams.sentinel.stream import PROCESSOR_NAME

NAMES = TopicNames("p.")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"KERNEL_STATE_DIR": str(tmp_path), **extra}


# -- Settings: KERNEL_KAFKA_* -> librdkafka -----------------------------------------
def test_the_environment_maps_onto_librdkafka_settings(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    s = Settings.from_env(
        _env(
            tmp_path,
            KERNEL_KAFKA_SECURITY_PROTOCOL="sasl_ssl",
            KERNEL_KAFKA_SASL_USERNAME="kernel-signer",
            KERNEL_KAFKA_SASL_PASSWORD_FILE=str(secret),
            KERNEL_KAFKA_SSL_CA_LOCATION="/etc/kernel/ca.pem",
        )
    )
    assert s.kafka_client_security() == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "kernel-signer",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/kernel/ca.pem",
    }
    assert "s3cret" not in repr(
        Settings.from_env(_env(tmp_path, KERNEL_KAFKA_SASL_PASSWORD="s3cret"))
    )


def test_no_security_in_the_environment_is_plaintext(tmp_path: Path) -> None:
    s = Settings.from_env(_env(tmp_path))
    assert s.kafka_client_security() == {}
    assert not s.kafka_stack_secure
    assert Kernel(s).kafka.security == {}


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"KERNEL_KAFKA_SECURITY": "tls"}, "plaintext or sasl_ssl"),
        ({"KERNEL_KAFKA_SECURITY_PROTOCOL": "SASL_TLS"}, "SASL_SSL"),
        (
            {"KERNEL_KAFKA_SASL_PASSWORD": "a", "KERNEL_KAFKA_SASL_PASSWORD_FILE": "/x"},
            "not both",
        ),
        ({"KERNEL_KAFKA_SSL_CERT_LOCATION": "/c.pem"}, "needs its key"),
    ],
)
def test_contradictory_or_unknown_security_is_refused_at_startup(
    tmp_path: Path, extra: dict[str, str], says: str
) -> None:
    with pytest.raises(ConfigError, match=says):
        Settings.from_env(_env(tmp_path, **extra))


def test_an_unreadable_password_file_says_which(tmp_path: Path) -> None:
    s = Settings.from_env(_env(tmp_path, KERNEL_KAFKA_SASL_PASSWORD_FILE=str(tmp_path / "no")))
    with pytest.raises(ConfigError, match="KERNEL_KAFKA_SASL_PASSWORD_FILE"):
        s.kafka_client_security()


def test_the_secured_local_stack_fills_in_what_the_environment_leaves_out(tmp_path: Path) -> None:
    secrets = tmp_path / "kafka" / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "kernel-signer.password").write_text("generated")
    env = _env(
        tmp_path, KERNEL_KAFKA_SECURITY="sasl_ssl", KERNEL_KAFKA_SASL_USERNAME="kernel-signer"
    )
    assert Kernel(Settings.from_env(env)).kafka.security == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "kernel-signer",
        "sasl.password": "generated",
        "ssl.ca.location": str(tmp_path / "kafka" / "tls" / "ca.pem"),
    }
    own = Kernel(Settings.from_env({**env, "KERNEL_KAFKA_SASL_PASSWORD": "mine"}))
    assert own.kafka.security["sasl.password"] == "mine"


def test_a_principal_the_stack_never_made_is_named(tmp_path: Path) -> None:
    env = _env(tmp_path, KERNEL_KAFKA_SECURITY="sasl_ssl", KERNEL_KAFKA_SASL_USERNAME="mallory")
    with pytest.raises(StackError, match="'mallory'"):
        _ = Kernel(Settings.from_env(env)).kafka


# -- aiokafka --------------------------------------------------------------------------
def test_aiokafka_gets_scram_as_its_arguments_and_tls_as_an_ssl_context() -> None:
    kafka = KafkaClients(
        "h:1",
        {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "u",
            "sasl.password": "p",
        },
    )
    args = kafka.aio_arguments(acks="all")
    context = args.pop("ssl_context")
    assert args == {
        "bootstrap_servers": "h:1",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "u",
        "sasl_plain_password": "p",
        "acks": "all",
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_aiokafka_tls_settings_that_cannot_load_or_are_unknown_are_refused(tmp_path: Path) -> None:
    missing = KafkaClients("h:1", {"ssl.ca.location": str(tmp_path / "none.pem")})
    with pytest.raises(ConfigError, match="cannot be loaded"):
        missing.aio_arguments()
    with pytest.raises(ConfigError, match="not supported by the asyncio producer"):
        KafkaClients("h:1", {"ssl.keystore.location": "/k.p12"}).aio_arguments()
    off = KafkaClients(
        "h:1", {"security.protocol": "SSL", "ssl.endpoint.identification.algorithm": "none"}
    )
    assert not off.aio_arguments()["ssl_context"].check_hostname


# -- the secured broker's properties -----------------------------------------------
def test_the_secured_broker_authorizes_and_denies_without_an_acl(tmp_path: Path) -> None:
    sec = BrokerSecurity(tmp_path, tuple(PRINCIPALS), super_users=(ADMIN,))
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "store.password").write_text("store")
    for p in (BROKER_PRINCIPAL, *PRINCIPALS):
        sec._ensure_password(p)
    assert sec.password_file(ADMIN).stat().st_mode & 0o777 == 0o600
    props = dict(line.split("=", 1) for line in sec.server_properties(9, 10))
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == f"User:{BROKER_PRINCIPAL};User:{ADMIN}"
    assert props["listeners"] == "SASL_SSL://127.0.0.1:9,CONTROLLER://127.0.0.1:10"
    assert "PLAINTEXT:" not in props["listener.security.protocol.map"]
    scram = [a for a in sec.format_args() if a.startswith("SCRAM-SHA-512=[name=")]
    assert len(scram) == len(PRINCIPALS) + 1


# -- the ACL table -------------------------------------------------------------------
def _rights(user: str, op: str, resource: str = "topic") -> set[str]:
    return {
        g.name
        for g in grants(NAMES)
        if g.user == user and g.operation == op and g.resource == resource
    }


def test_every_grant_is_to_a_known_principal_and_the_admin_needs_none() -> None:
    users = {g.user for g in grants(NAMES)}
    assert users <= set(PRINCIPALS)
    assert ADMIN not in users
    assert users == set(PRINCIPALS) - {ADMIN}


def test_each_topic_is_written_only_by_its_writers() -> None:
    writers: dict[str, set[str]] = {}
    for g in grants(NAMES):
        if g.resource == "topic" and g.operation == "write":
            writers.setdefault(g.name, set()).add(g.user)
    assert writers == {
        # the API's POST /events; remediation's quarantine action
        NAMES.actions: {"kernel-producer", "kernel-api", "kernel-remediation"},
        # the API: a quorum decision, when an approval it takes completes the quorum
        NAMES.name("remediations"): {"kernel-remediation", "kernel-api"},
        NAMES.access: {"kernel-api"},  # refusals at its door
        NAMES.approvals: {"kernel-api"},  # POST /approvals/... (issue 12.3)
        NAMES.chain: {"kernel-signer"},
        NAMES.checkpoints: {"kernel-checkpointer"},
        NAMES.policy_checks: {"kernel-sentinel", "kernel-api"},
        NAMES.policies: {"kernel-rollout"},  # a canary's rollback or promotion (issue 12.2)
        NAMES.dlq: {
            "kernel-signer",
            "kernel-checkpointer",
            "kernel-sentinel",
            "kernel-projector",
            "kernel-remediation",
            "kernel-rollout",
        },
    }


def test_the_workers_read_exactly_their_inputs() -> None:
    assert _rights("kernel-producer", "read") == set()
    assert _rights("kernel-signer", "read") == {*NAMES.audited(), NAMES.chain}
    assert _rights("kernel-checkpointer", "read") == {NAMES.chain}
    assert _rights("kernel-sentinel", "read") == {NAMES.actions, NAMES.policies, NAMES.approvals}
    assert _rights("kernel-projector", "read") == {
        NAMES.approvals,  # the registry's k-of-n rule (issue 12.3)
        NAMES.chain,
        NAMES.checkpoints,
        NAMES.policies,
        NAMES.policy_checks,
    }
    assert _rights("kernel-remediation", "read") == {
        NAMES.policy_checks,
        NAMES.name("remediations"),
    }
    assert _rights("kernel-rollout", "read") == {NAMES.policy_checks, NAMES.policies}
    assert _rights("kernel-monitor", "read") == {NAMES.name(t.name) for t in TOPICS}
    assert _rights("kernel-monitor", "write") == set()


def test_groups_and_transactional_ids_are_the_ones_the_runners_use() -> None:
    """TransactionalRunner: group ``{prefix}{processor.name}``, transactional id
    ``{group}-{instance}``; kernel publish: ``kernel-publish-<uuid>``."""
    for user, name in (
        ("kernel-signer", ChainSigner.name),
        ("kernel-checkpointer", Checkpointer.name),
        ("kernel-sentinel", PROCESSOR_NAME),
        ("kernel-remediation", RemediationWorker.name),
        ("kernel-rollout", ROLLOUT),
    ):
        assert f"p.{name}" in _rights(user, "read", "group")
        assert _rights(user, "write", "transactional_id") == {f"p.{name}-"}
    assert _rights("kernel-producer", "write", "transactional_id") == {PUBLISH_TRANSACTIONS}
    assert all(g.prefixed for g in grants(NAMES) if g.resource == "transactional_id")


def test_a_broker_formatted_plaintext_is_not_restarted_secured(tmp_path: Path) -> None:
    (tmp_path / "kafka" / "data").mkdir(parents=True)
    (tmp_path / "kafka" / "data" / "meta.properties").write_text("")  # formatted, no marker
    secured = KafkaServer(tmp_path, 9, secure=True, principals=(ADMIN,))
    with pytest.raises(StackError, match="formatted PLAINTEXT, not SASL_SSL"):
        secured._check_listener()
    KafkaServer(tmp_path, 9)._check_listener()  # as it was: fine
