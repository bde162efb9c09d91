"""/health and /ready of the API against the real stack, including the lag check."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from ops.bootstrap import Kernel
from ops.config import Settings
from ops.http.app import build_app
from projections.migrate import migrate
from tests import identity


async def _get(kernel: Kernel) -> tuple[httpx.Response, httpx.Response]:
    # httpx against the ASGI app in-process (starlette's TestClient now warns
    # about httpx, and warnings are errors here).
    transport = httpx.ASGITransport(app=build_app(kernel))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://kernel", headers=identity.AUTH
    ) as client:
        return await client.get("/health"), await client.get("/ready")


def _ready(kernel: Kernel) -> tuple[int, dict[str, dict[str, object]]]:
    health, response = asyncio.run(_get(kernel))
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    body = response.json()
    assert body["ready"] is (response.status_code == 200)
    return response.status_code, body["checks"]


def test_ready_when_topics_exist_and_migrations_applied(db_kernel: Kernel) -> None:
    migrate(db_kernel.settings.database_url)
    status, checks = _ready(db_kernel)
    assert status == 200, checks
    assert set(checks) == {"kafka", "postgres", "lag"}
    assert all(c["ok"] for c in checks.values())


def test_not_ready_names_pending_migrations(db_kernel: Kernel) -> None:
    status, checks = _ready(db_kernel)
    assert status == 503
    assert checks["postgres"]["ok"] is False
    assert "kernel db migrate" in str(checks["postgres"]["detail"])
    assert checks["kafka"]["ok"] is True


def test_not_ready_names_missing_topics(settings: Settings, database_url: str) -> None:
    migrate(database_url)
    kernel = Kernel(replace(settings, postgres_url=database_url))  # topics never created
    status, checks = _ready(kernel)
    assert status == 503
    assert checks["kafka"]["ok"] is False
    assert "kernel topics ensure" in str(checks["kafka"]["detail"])
    assert checks["postgres"]["ok"] is True


def test_not_ready_when_a_group_is_far_behind(
    db_kernel: Kernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate(db_kernel.settings.database_url)
    topic = db_kernel.names.actions
    bootstrap = db_kernel.settings.kafka_bootstrap
    hour_ago_ms = int((time.time() - 3600) * 1000)
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(3):
        producer.produce(topic, f"v{i}".encode(), partition=0, timestamp=hour_ago_ms)
    assert producer.flush(10) == 0
    group = f"{db_kernel.settings.topic_prefix}stuck"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    finally:
        consumer.close()

    monkeypatch.setenv("KERNEL_READY_MAX_LAG_S", "60")
    status, checks = _ready(db_kernel)
    assert status == 503
    assert checks["lag"]["ok"] is False
    detail = str(checks["lag"]["detail"])
    assert group in detail and "behind" in detail
    assert f"{group} is NO_MEMBER" in detail  # a bare commit: nobody serves the group
    assert checks["kafka"]["ok"] and checks["postgres"]["ok"]
