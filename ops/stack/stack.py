"""Bring the local Kafka and Postgres up, down, and report on them.

External services named by KERNEL_BOOTSTRAP_SERVERS or POSTGRES_URL are used
as they are: the stack only checks that they answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ops.config import Settings
from ops.kafka_acls import PRINCIPALS
from ops.stack.errors import StackError
from ops.stack.kafka_server import KafkaServer
from ops.stack.postgres_server import PostgresServer
from projections.postgres import open_connection, redacted

__all__ = ["LocalStack", "ServiceStatus", "StackStatus"]


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    address: str
    running: bool
    managed: bool  # started by this stack (False: external, named in the environment)
    detail: str = ""


@dataclass(frozen=True)
class StackStatus:
    kafka: ServiceStatus
    postgres: ServiceStatus
    seconds: float = 0.0

    @property
    def healthy(self) -> bool:
        return self.kafka.running and self.postgres.running


class LocalStack:
    def __init__(self, settings: Settings, *, durable: bool = True) -> None:
        self.settings = settings
        self.kafka = KafkaServer(
            settings.state_dir,
            settings.kafka_port,
            settings.kafka_home,
            secure=settings.kafka_stack_secure,
            principals=tuple(PRINCIPALS),
        )
        self.postgres = PostgresServer(settings.state_dir, settings.pg_port, durable=durable)

    @property
    def kafka_managed(self) -> bool:
        return self.settings.bootstrap_servers is None

    @property
    def postgres_managed(self) -> bool:
        return self.settings.postgres_url is None

    def up(self) -> StackStatus:
        """Idempotent: what already runs is reused, what is missing is started."""
        started = time.monotonic()
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        details = {}
        if self.postgres_managed:
            details["pg"] = "started" if self.postgres.start() else "reused"
        if self.kafka_managed:
            details["kafka"] = "started" if self.kafka.start() else "reused"
        status = self.status()
        if not status.healthy:
            raise StackError(_describe_unhealthy(status))
        return StackStatus(
            kafka=_with_detail(status.kafka, details.get("kafka", "external")),
            postgres=_with_detail(status.postgres, details.get("pg", "external")),
            seconds=time.monotonic() - started,
        )

    def down(self) -> list[str]:
        stopped = []
        if self.kafka_managed and self.kafka.stop():
            stopped.append("kafka")
        if self.postgres_managed and self.postgres.stop():
            stopped.append("postgres")
        return stopped

    def status(self) -> StackStatus:
        if self.kafka_managed:
            kafka = ServiceStatus("kafka", self.kafka.bootstrap, self.kafka.running(), True)
        else:
            addr = self.settings.kafka_bootstrap
            security = self.settings.kafka_client_security()
            kafka = ServiceStatus("kafka", addr, _kafka_answers(addr, security), False)
        if self.postgres_managed:
            where = redacted(self.postgres.url)  # a status line is printed and logged
            pg = ServiceStatus("postgres", where, self.postgres.running(), True)
        else:
            url = self.settings.database_url
            pg = ServiceStatus("postgres", redacted(url), _postgres_answers(url), False)
        return StackStatus(kafka=kafka, postgres=pg)


def _with_detail(s: ServiceStatus, detail: str) -> ServiceStatus:
    return ServiceStatus(s.name, s.address, s.running, s.managed, detail)


def _describe_unhealthy(status: StackStatus) -> str:
    bad = [s for s in (status.kafka, status.postgres) if not s.running]
    return "; ".join(f"{s.name} at {s.address} does not answer" for s in bad)


def _kafka_answers(bootstrap: str, security: dict[str, str]) -> bool:
    from streams.kafka.clients import KafkaClients  # noqa: PLC0415
    from streams.kafka.offsets import KafkaOffsets  # noqa: PLC0415

    try:
        return KafkaOffsets(KafkaClients(bootstrap, security), timeout_s=3).metadata().brokers > 0
    except Exception:
        return False


def _postgres_answers(url: str) -> bool:
    import psycopg  # noqa: PLC0415

    try:
        with open_connection(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False
