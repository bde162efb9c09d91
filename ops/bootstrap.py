"""The composition root: the one place adapters are built from configuration.

The CLI, the HTTP API and the workers call :func:`bootstrap`; tests pass their
own :class:`~ops.config.Settings` (uuid-named topic prefixes, the test stack).
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
    import psycopg

    from ops.stack import LocalStack
    from projections.projector import ProjectorRunner
    from streams.chain.signing import Signer, Verifier
    from streams.kafka.admin import TopicAdmin
    from streams.kafka.producer import Producer
    from streams.kafka.transactional_runner import TransactionalRunner

__all__ = ["Kernel", "bootstrap"]


@dataclass
class Kernel:
    settings: Settings
    names: TopicNames = field(init=False)

    def __post_init__(self) -> None:
        self.names = TopicNames(self.settings.topic_prefix)

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
            self.settings.kafka_bootstrap,
            codec=self.codec,
            names=self.names,
            timeout_s=self.settings.publish_timeout_s,
            transactional_id=transactional_id,
            tracing=self.settings.tracing,
        )

    def topic_admin(self) -> TopicAdmin:
        from streams.kafka.admin import TopicAdmin  # noqa: PLC0415

        return TopicAdmin(self.settings.kafka_bootstrap, self.names)

    def signer(self) -> Signer:
        """The chain's signing key: KERNEL_SIGNING_KEY, or the key of KERNEL_SIGNER_ID."""
        return _signer(self)

    def verifiers(self) -> dict[str, Verifier]:
        """Public keys that audit records may be signed by: KERNEL_SIGNERS_FILE, or
        (development) every key file in the state dir plus KERNEL_SIGNING_KEY."""
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
        self, processor: Any, instance_id: str | None = None
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
            bootstrap=self.settings.kafka_bootstrap,
            codec=self.codec,
            names=self.names,
            instance_id=self.settings.instance_id if instance_id is None else instance_id,
            max_record_bytes=self.settings.max_record_bytes,
            on_batch=TransactionalRunnerMetrics(processor.name),
        )

    def projector(
        self, projection: Any, instance_id: str | None = None, producer: Producer | None = None
    ) -> ProjectorRunner:
        """A Kafka-to-Postgres runner for ``projection``, reporting to the shared metrics.

        Consumer group ``<prefix>projector-<name>``; records it cannot project go
        to the dead-letter topic (through ``producer``, or one of its own); every
        Postgres call bounded by the ``KERNEL_PG_*`` timeouts.
        """
        from ops.runner_metrics import ProjectorMetrics  # noqa: PLC0415
        from projections.kafka_dead_letters import KafkaDeadLetters  # noqa: PLC0415
        from projections.postgres import PostgresTimeouts  # noqa: PLC0415
        from projections.projector import ProjectorRunner  # noqa: PLC0415

        s = self.settings
        return ProjectorRunner(
            projection,
            bootstrap=s.kafka_bootstrap,
            database_url=s.database_url,
            codec=self.codec,
            group=f"{self.names.prefix}projector-{projection.name}",
            instance_id=s.instance_id if instance_id is None else instance_id,
            dead_letters=KafkaDeadLetters(producer or self.producer(), projection.name),
            timeouts=PostgresTimeouts(
                s.pg_connect_timeout_s, s.pg_statement_timeout_s, s.pg_keepalive_s
            ),
            on_poll=ProjectorMetrics(projection.name),
        )

    def audit_projector(self, instance_id: str | None = None) -> ProjectorRunner:
        from projections.audit import AuditProjection  # noqa: PLC0415

        projection = AuditProjection(self.names.chain, self.names.checkpoints)
        return self.projector(projection, instance_id)

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection[tuple[object, ...]]:
        import psycopg  # noqa: PLC0415

        from schemas.errors import StoreUnavailableError  # noqa: PLC0415

        try:
            return psycopg.connect(
                self.settings.database_url, autocommit=autocommit, connect_timeout=10
            )
        except psycopg.OperationalError as exc:
            raise StoreUnavailableError(
                f"Postgres at {self.settings.database_url} did not answer: {exc}"
            ) from exc


def _signer(kernel: Kernel) -> Signer:
    from schemas.errors import ConfigError  # noqa: PLC0415
    from streams.chain.keys import key_path, load_signer  # noqa: PLC0415

    settings = kernel.settings
    if settings.environment == "production":
        raise ConfigError(
            "KERNEL_ENV=production refuses local signing keys: production signing goes "
            "through a KMS/HSM (PKCS#11), which this build does not configure yet"
        )
    path = settings.signing_key or key_path(settings.keys_dir, settings.signer_id)
    if not path.exists():
        raise ConfigError(f"no signing key at {path}; create one with `kernel keys generate`")
    return load_signer(path)


def bootstrap(settings: Settings | None = None) -> Kernel:
    return Kernel(settings or Settings.from_env())
