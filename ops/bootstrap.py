"""The composition root: the one place adapters are built from configuration.

The CLI, the HTTP API and the workers call :func:`bootstrap`; tests pass their
own :class:`~ops.config.Settings` (uuid-named topic prefixes, the test stack).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from ops.config import Settings
from schemas.codec import EventCodec
from schemas.topics import TopicNames

if TYPE_CHECKING:
    import psycopg

    from ops.stack import LocalStack
    from streams.kafka.admin import TopicAdmin
    from streams.kafka.producer import Producer

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
        return EventCodec(registry=registry, max_bytes=self.settings.max_event_bytes)

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
        )

    def topic_admin(self) -> TopicAdmin:
        from streams.kafka.admin import TopicAdmin  # noqa: PLC0415

        return TopicAdmin(self.settings.kafka_bootstrap, self.names)

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


def bootstrap(settings: Settings | None = None) -> Kernel:
    return Kernel(settings or Settings.from_env())
