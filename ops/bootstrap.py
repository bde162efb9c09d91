"""The composition root: the one place adapters are built from configuration.

The CLI, the HTTP API and the workers call :func:`bootstrap`; tests pass their
own :class:`~ops.config.Settings` (uuid-named topic prefixes, the test stack).

Every client is built from here: Kafka producers, consumers and admin clients
from one :class:`~streams.kafka.clients.KafkaClients` (bootstrap servers and
security), Postgres connections from one :class:`~projections.postgres.Database`
per role (a pool, and dedicated connections for long holders). What the root
builds receives narrow ports -- a pool, an offsets reader, a factory of the
check's parts -- never the ``Kernel``: routers, workers and services cannot reach
back up for a client of their own (``tests/unit/test_client_construction.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ops.config import Settings
from schemas.codec import EventCodec
from schemas.contract import InputContract
from schemas.topics import TopicNames

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI

    from ops.http.access import Gate
    from ops.http.operations import ReadinessCheck
    from ops.http.sentinel_check import SyncCheck
    from ops.lag.monitor import CheckpointSource, LagMonitor
    from ops.stack import LocalStack
    from ops.workers import Runnable
    from projections.postgres import Conn, Database
    from projections.projector import ProjectorRunner
    from streams.chain.signing import Signer, Verifier
    from streams.kafka.acls import KafkaAcls
    from streams.kafka.admin import TopicAdmin
    from streams.kafka.clients import KafkaClients
    from streams.kafka.log_reader import KafkaLogReader
    from streams.kafka.offsets import KafkaOffsets
    from streams.kafka.producer import Producer
    from streams.kafka.transactional_runner import TransactionalRunner
    from streams.remediation.actions import ActionSpec as RemediationAction
    from streams.sentinel.check_service import Evaluator
    from streams.sentinel.kafka_decision_log import KafkaDecisionLog
    from streams.sentinel.stream import SentinelState

__all__ = ["Kernel", "bootstrap"]


@dataclass
class Kernel:
    settings: Settings
    names: TopicNames = field(init=False)
    _databases: dict[str, Database] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.names = TopicNames(self.settings.topic_prefix)

    # -- clients ----------------------------------------------------------------
    @cached_property
    def kafka(self) -> KafkaClients:
        """How every Kafka client reaches the brokers: the bootstrap servers, and the
        TLS/SASL settings of ``KERNEL_KAFKA_*`` (ops.config).

        On the local stack secured (``KERNEL_KAFKA_SECURITY=sasl_ssl``) what the
        environment leaves out is the stack's: SASL_SSL, SCRAM-SHA-512, its CA, and
        the password it generated for ``KERNEL_KAFKA_SASL_USERNAME`` (default the
        admin), so ``KERNEL_KAFKA_SASL_USERNAME=kernel-signer`` is enough locally.
        """
        from streams.kafka.clients import KafkaClients  # noqa: PLC0415

        s = self.settings
        security = s.kafka_client_security()
        if s.kafka_stack_secure and s.bootstrap_servers is None:
            local = self.stack().kafka
            own_password = "sasl.password" not in security
            security = (
                local.client_security(s.kafka_sasl_username, password=own_password) | security
            )
        return KafkaClients(s.kafka_bootstrap, security)

    def database(self, role: str = "kernel") -> Database:
        """Postgres as ``role``: one pool per role, for the life of this root.

        Each role connects with its own URL (``KERNEL_DATABASE_URL_<ROLE>``:
        ``migrate``, ``api``, ``audit_projector``, ``sentinel_projector``,
        ``auditor``), so a process holds only its role's rights; a role without
        one, and ``kernel`` (an operator's command), uses ``POSTGRES_URL``.
        """
        from projections.postgres import Database, PostgresTimeouts  # noqa: PLC0415

        found = self._databases.get(role)
        if found is None:
            s = self.settings
            timeouts = PostgresTimeouts(
                s.pg_connect_timeout_s, s.pg_statement_timeout_s, s.pg_keepalive_s
            )
            url = s.database_url_for(role)
            found = self._databases[role] = Database(url, timeouts, role=role)
        return found

    def offsets(self, *, timeout_s: float | None = None, quiet: bool = False) -> KafkaOffsets:
        """The Kafka admin/offsets adapter (topics, groups, offsets, heads)."""
        from streams.kafka.offsets import KafkaOffsets  # noqa: PLC0415

        timeout = self.settings.publish_timeout_s if timeout_s is None else timeout_s
        return KafkaOffsets(self.kafka, timeout_s=timeout, quiet=quiet)

    def log_reader(self, timeout_s: float = 10.0) -> KafkaLogReader:
        from streams.kafka.log_reader import KafkaLogReader  # noqa: PLC0415

        return KafkaLogReader(self.kafka, self.codec, timeout_s)

    def close(self) -> None:
        """Close the pools this root opened."""
        while self._databases:
            _, db = self._databases.popitem()
            db.close()

    @cached_property
    def codec(self) -> EventCodec:
        registry = None
        if self.settings.schema_registry_url:
            from schemas.confluent_registry import ConfluentRegistry  # noqa: PLC0415

            registry = ConfluentRegistry(self.settings.schema_registry_url)
        return EventCodec(registry=registry, contract=InputContract.from_settings(self.settings))

    def stack(self, *, durable: bool = True) -> LocalStack:
        from ops.stack import LocalStack  # noqa: PLC0415

        return LocalStack(self.settings, durable=durable)

    def producer(self, transactional_id: str | None = None) -> Producer:
        from streams.kafka.producer import Producer  # noqa: PLC0415

        return Producer(
            self.kafka,
            codec=self.codec,
            names=self.names,
            timeout_s=self.settings.publish_timeout_s,
            transactional_id=transactional_id,
            tracing=self.settings.tracing,
        )

    def topic_admin(self) -> TopicAdmin:
        from streams.kafka.admin import TopicAdmin  # noqa: PLC0415

        return TopicAdmin(self.kafka, self.names)

    def kafka_acls(self) -> KafkaAcls:
        """The ACL admin adapter (``kernel acls``; run as the admin principal)."""
        from streams.kafka.acls import KafkaAcls  # noqa: PLC0415

        return KafkaAcls(self.kafka, timeout_s=self.settings.publish_timeout_s)

    def signer(self) -> Signer:
        """The chain's signing key: in a PKCS#11 token (KERNEL_SIGNER_BACKEND=pkcs11), or
        the key file KERNEL_SIGNING_KEY, or the key file of KERNEL_SIGNER_ID."""
        return _signer(self)

    def verifiers(self) -> dict[str, Verifier]:
        """Public keys that audit records may be signed by: KERNEL_SIGNERS_FILE, or
        every key file in the state dir plus KERNEL_SIGNING_KEY, plus the token's key
        when KERNEL_SIGNER_BACKEND=pkcs11."""
        from streams.chain.keys import key_files, load_signer, load_signers_file  # noqa: PLC0415
        from streams.chain.signing import Verifier  # noqa: PLC0415

        if self.settings.signers_file is not None:
            return load_signers_file(self.settings.signers_file)
        paths = key_files(self.settings.keys_dir)
        if self.settings.signing_key is not None:
            paths.append(self.settings.signing_key)
        out: dict[str, Verifier] = {}
        for path in paths:
            signer = load_signer(path)
            out[signer.signer_id] = Verifier(signer.public_key)
        if self.settings.signer_backend == "pkcs11":  # the token's key, as the signer names it
            from ops.pkcs11_config import token_config  # noqa: PLC0415
            from streams.chain.pkcs11_signer import token_public_key  # noqa: PLC0415

            sid, public = self.settings.signer_id, token_public_key(token_config(self.settings))
            if sid in out and out[sid].public_key != public:
                from schemas.errors import ConfigError  # noqa: PLC0415

                raise ConfigError(
                    f"signerId {sid!r} names both a key file and the PKCS#11 token's key; "
                    f"give the token's key its own KERNEL_SIGNER_ID"
                )
            out[sid] = Verifier(public)
        if not out:
            from schemas.errors import ConfigError  # noqa: PLC0415

            raise ConfigError(
                f"no signers to verify with: set KERNEL_SIGNERS_FILE (signers.json) "
                f"or keep key files in {self.settings.keys_dir}"
            )
        return out

    def _partitions(self, short: str) -> int:
        from schemas.topics import TOPICS  # noqa: PLC0415

        return next(t.partitions for t in TOPICS if t.name == short)

    def chain_signer(self, instance_id: str | None = None) -> TransactionalRunner[Any]:
        from streams.chain.signer import ChainSigner  # noqa: PLC0415

        processor = ChainSigner(
            self.signer(),
            self.names.audited(),
            self.names.chain,
            self._partitions("audit.chain"),
            dedup_window=self.settings.dedup_window,
        )
        return self.transactional(processor, instance_id)

    def checkpointer(self, instance_id: str | None = None) -> TransactionalRunner[Any]:
        from streams.chain.checkpointer import Checkpointer  # noqa: PLC0415

        processor = Checkpointer(
            self.signer(),
            self.names.chain,
            self.names.checkpoints,
            every=self.settings.checkpoint_every,
            interval_ms=self.settings.checkpoint_interval_s * 1000,
        )
        return self.transactional(processor, instance_id)

    def transactional(
        self, processor: Any, instance_id: str | None = None, *, batch_size: int = 2000
    ) -> TransactionalRunner[Any]:
        """An exactly-once runner for ``processor``, reporting to the shared metrics.

        ``instance_id`` defaults to ``Settings.instance_id`` (KERNEL_INSTANCE_ID,
        ``kernel run --instance``): the transactional id is ``{group}-{instance_id}``,
        so instances of one worker share its group without fencing each other.
        """
        from ops.runner_metrics import TransactionalRunnerMetrics  # noqa: PLC0415
        from streams.kafka.transactional_runner import TransactionalRunner  # noqa: PLC0415

        return TransactionalRunner(
            processor,
            kafka=self.kafka,
            codec=self.codec,
            names=self.names,
            instance_id=self.settings.instance_id if instance_id is None else instance_id,
            max_record_bytes=self.settings.max_record_bytes,
            batch_size=batch_size,
            on_batch=TransactionalRunnerMetrics(processor.name),
        )

    def remediation_actions(self) -> dict[str, RemediationAction]:
        """The registered remediation actions (KERNEL_REMEDIATION_ACTIONS), validated."""
        from ops.remediation.config import load_actions  # noqa: PLC0415

        return load_actions(self.settings.remediation_actions)

    def remediation(self, instance_id: str | None = None) -> TransactionalRunner[Any]:
        """The remediation worker: requests from decisions, approvals, actions, exactly once.

        One record per transaction: a webhook is never called inside an open broker
        transaction (its duration does not count against the transaction timeout),
        and an abort re-sends at most the one call (ops/remediation/worker.py).
        """
        from ops.remediation.config import webhook_secret  # noqa: PLC0415
        from ops.remediation.http_webhook import HttpWebhook  # noqa: PLC0415
        from ops.remediation.worker import RemediationWorker, runners_for  # noqa: PLC0415

        actions = self.remediation_actions()
        runners = runners_for(actions, lambda spec: HttpWebhook(spec, webhook_secret(spec)))
        processor = RemediationWorker(self.names, actions, runners)
        return self.transactional(processor, instance_id, batch_size=1)

    def projector(
        self,
        projection: Any,
        instance_id: str | None = None,
        producer: Producer | None = None,
        role: str = "projector",
    ) -> ProjectorRunner:
        """A Kafka-to-Postgres runner for ``projection``, reporting to the shared metrics.

        Consumer group ``<prefix>projector-<name>``; records it cannot project go
        to the dead-letter topic (through ``producer``, or one of its own); every
        Postgres call bounded by the ``KERNEL_PG_*`` timeouts, as database ``role``.
        """
        from ops.runner_metrics import ProjectorMetrics  # noqa: PLC0415
        from projections.kafka_dead_letters import KafkaDeadLetters  # noqa: PLC0415
        from projections.projector import ProjectorRunner  # noqa: PLC0415

        s = self.settings
        return ProjectorRunner(
            projection,
            kafka=self.kafka,
            database_url=self.database(role).url,
            codec=self.codec,
            group=f"{self.names.prefix}projector-{projection.name}",
            instance_id=s.instance_id if instance_id is None else instance_id,
            dead_letters=KafkaDeadLetters(producer or self.producer(), projection.name),
            timeouts=self.database(role).timeouts,
            on_poll=ProjectorMetrics(projection.name),
        )

    def audit_projector(self, instance_id: str | None = None) -> ProjectorRunner:
        from projections.audit import AuditProjection  # noqa: PLC0415

        projection = AuditProjection(self.names.chain, self.names.checkpoints)
        return self.projector(projection, instance_id, role="audit_projector")

    def sentinel(self, instance_id: str | None = None) -> TransactionalRunner[SentinelState]:
        """Streaming SentinelNet: every action evaluated, a policyCheck emitted, exactly once."""
        from ops.workers.sentinel import MeteredSentinel  # noqa: PLC0415
        from streams.sentinel.stream import SentinelProcessor  # noqa: PLC0415

        names = self.names
        processor = SentinelProcessor(
            names.actions,
            names.policies,
            names.policy_checks,
            dedup_window=self.settings.dedup_window,
            approvals_topic=names.approvals,  # k-of-n approvals (issue 12.3)
            approvals_required=self.settings.approvals_required,
        )
        return self.transactional(MeteredSentinel(processor), instance_id)

    def rollout(self, instance_id: str | None = None) -> TransactionalRunner[Any]:
        """The canary gates over every policyCheck; rollbacks and promotions, exactly once."""
        from ops.workers.rollout import MeteredRollout  # noqa: PLC0415
        from streams.rollout.processor import RolloutProcessor  # noqa: PLC0415

        processor = RolloutProcessor(self.names.policy_checks, self.names.policies)
        return self.transactional(MeteredRollout(processor), instance_id)

    def sentinel_projectors(self, producer: Producer | None = None) -> list[ProjectorRunner]:
        """The policy registry and explain projections, sharing one dead-letter producer."""
        from ops.approvals import activation_gate  # noqa: PLC0415
        from projections.sentinel import (  # noqa: PLC0415
            PolicyCheckProjection,
            PolicyRegistryProjection,
        )

        dlq = producer or self.producer()
        return [
            self.projector(
                PolicyRegistryProjection(
                    self.names.policies, approvals=lambda: activation_gate(self)
                ),
                producer=dlq,
                role="sentinel_projector",
            ),
            self.projector(
                PolicyCheckProjection(self.names.policy_checks),
                producer=dlq,
                role="sentinel_projector",
            ),
        ]

    def sentinel_projector(self) -> Runnable:
        from ops.workers.sentinel_projector import InTurn  # noqa: PLC0415

        return InTurn(self.sentinel_projectors())

    def auditor(self) -> Runnable:
        """Continuous verification of the audit projection (it reads Postgres)."""
        from ops.workers.auditor import Auditor, AuditorLoop  # noqa: PLC0415

        s = self.settings
        auditor = Auditor(self.verifiers(), full_every=s.auditor_full_every)
        return AuditorLoop(auditor, self.database("auditor"), interval_s=s.auditor_interval_s)

    # -- operations ---------------------------------------------------------------
    def lag_monitor(
        self,
        *,
        projections: bool = True,
        wrap: Callable[[CheckpointSource], CheckpointSource] | None = None,
        role: str = "kernel",
    ) -> LagMonitor:
        """The deployment's lag monitor: Kafka groups, and the projections' checkpoints
        (read as database ``role`` on a pooled connection per sample; ``wrap``
        decorates that source)."""
        from ops.lag.expected import pipeline_groups  # noqa: PLC0415
        from ops.lag.monitor import LagConfig, LagMonitor  # noqa: PLC0415
        from ops.lag.postgres_checkpoints import PostgresCheckpoints  # noqa: PLC0415

        checkpoints: CheckpointSource | None = None
        if projections:
            checkpoints = PostgresCheckpoints(self.database(role))
            if wrap is not None:
                checkpoints = wrap(checkpoints)
        return LagMonitor(
            self.offsets(),
            prefix=self.settings.topic_prefix,
            config=LagConfig.from_env(),
            checkpoints=checkpoints,
            expected=pipeline_groups(self.names),
        )

    def readiness(self) -> dict[str, ReadinessCheck]:
        """What ``/ready`` checks: Kafka with the topics, Postgres migrated, lag."""
        from ops.health import lag_check  # noqa: PLC0415
        from ops.http.operations import kafka_ready, postgres_ready  # noqa: PLC0415

        return {
            "kafka": kafka_ready(self.topic_admin(), self.names.audited()),
            "postgres": postgres_ready(self.database("api")),
            "lag": lag_check(lambda: self.lag_monitor(role="api")),
        }

    def sync_check(self, evaluator: Evaluator | None = None, max_in_flight: int = 8) -> SyncCheck:
        """The synchronous check's service and the adapters it runs on (built when the
        API starts, by the check router's lifespan)."""
        from ops.approvals import activation_gate  # noqa: PLC0415
        from ops.http.sentinel_check import SyncCheck  # noqa: PLC0415
        from streams.sentinel.check_service import CheckService  # noqa: PLC0415
        from streams.sentinel.evaluator import evaluate  # noqa: PLC0415
        from streams.sentinel.kafka_decision_log import KafkaDecisionLog  # noqa: PLC0415
        from streams.sentinel.kafka_policy_feed import KafkaPolicyFeed  # noqa: PLC0415
        from streams.sentinel.registry import PolicyRegistry  # noqa: PLC0415

        s = self.settings
        # a HIGH/CRITICAL activation is folded under the k-of-n rule (issue 12.3)
        registry = PolicyRegistry(approvals_source=lambda: activation_gate(self))
        feed = KafkaPolicyFeed(self.kafka, self.codec, self.names.policies, registry)
        decision_log = KafkaDecisionLog(
            self.kafka, self.codec, self.names.policy_checks, s.publish_timeout_s
        )
        service = CheckService(
            feed,
            decision_log,
            budget_ms=s.check_budget_ms,
            evaluator=evaluator or evaluate,
            max_in_flight=max_in_flight,
        )
        return SyncCheck(service, feed, decision_log)

    def gate(self) -> Gate:
        """Who may call the API: bearer tokens from KERNEL_TOKENS_FILE, certificate
        identities' roles from KERNEL_ROLES_FILE."""
        from ops.http.access import Gate, RoleMap  # noqa: PLC0415
        from ops.http.tokens import TokenStore  # noqa: PLC0415

        s = self.settings
        return Gate(TokenStore(s.tokens_file), RoleMap.load(s.roles_file))

    def async_log(self) -> KafkaDecisionLog:
        """An asyncio publisher (acknowledged writes, no blocking) for the API's records."""
        from streams.sentinel.kafka_decision_log import KafkaDecisionLog  # noqa: PLC0415

        s = self.settings
        return KafkaDecisionLog(self.kafka, self.codec, self.names.actions, s.publish_timeout_s)

    def api(self, gate: Gate | None = None) -> FastAPI:
        """The HTTP API: every area's routers over this root's ports, behind the gate."""
        from ops.approvals import load_approvals, now_ms  # noqa: PLC0415
        from ops.http.access_log import AccessLog  # noqa: PLC0415
        from ops.http.app import create_app  # noqa: PLC0415
        from ops.http.approvals import approvals_router  # noqa: PLC0415
        from ops.http.audit import audit_router  # noqa: PLC0415
        from ops.http.events import events_router  # noqa: PLC0415
        from ops.http.sentinel_check import check_router  # noqa: PLC0415
        from ops.http.sentinel_explain import explain_router  # noqa: PLC0415
        from ops.http.sentinel_simulations import simulations_router  # noqa: PLC0415
        from schemas.contract import InputContract  # noqa: PLC0415

        reads = self.database("api")
        contract = InputContract.from_settings(self.settings)
        routers = [
            check_router(self.sync_check),
            events_router(self.async_log, self.names, contract),
            explain_router(reads),
            simulations_router(reads),
            audit_router(reads),
            approvals_router(
                lambda: load_approvals(self), self.async_log, self.names.for_event_type, now_ms
            ),
        ]
        access_log = AccessLog(self.async_log, self.names.access)

        return create_app(
            routers,
            self.readiness(),
            on_close=self.close,
            gate=gate or self.gate(),
            access_log=access_log,
        )

    def connect(self, *, autocommit: bool = False) -> Conn:
        """A dedicated Postgres connection (a command's, a test's); the caller closes it."""
        return self.database().connect(autocommit=autocommit)


def _signer(kernel: Kernel) -> Signer:
    from schemas.errors import ConfigError  # noqa: PLC0415
    from streams.chain.keys import key_path, load_signer  # noqa: PLC0415

    settings = kernel.settings
    if settings.signer_backend == "pkcs11":
        from ops.pkcs11_config import token_config  # noqa: PLC0415
        from streams.chain.pkcs11_signer import open_signer  # noqa: PLC0415

        return open_signer(token_config(settings), settings.signer_id)
    if settings.environment == "production":
        raise ConfigError(
            "KERNEL_ENV=production refuses local signing keys: sign through a PKCS#11 "
            "token (HSM) with KERNEL_SIGNER_BACKEND=pkcs11, KERNEL_PKCS11_MODULE, "
            "KERNEL_PKCS11_TOKEN_LABEL and KERNEL_PKCS11_PIN_FILE; create the key in the "
            "token with `kernel keys generate --pkcs11` (docs/configuration.md)"
        )
    path = settings.signing_key or key_path(settings.keys_dir, settings.signer_id)
    if not path.exists():
        raise ConfigError(f"no signing key at {path}; create one with `kernel keys generate`")
    return load_signer(path)


def bootstrap(settings: Settings | None = None) -> Kernel:
    return Kernel(settings or Settings.from_env())
