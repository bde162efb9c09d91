"""``GET /health``, ``GET /ready``, ``GET /metrics``: the API process, for operators.

``/ready`` runs each readiness check on a worker thread -- the composition
root's are Kafka metadata reachable with the audited topics
(:func:`kafka_ready`), Postgres reachable with migrations current
(:func:`postgres_ready`) and the lag check (:mod:`ops.health`); 503 unless all pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from projections.store import Connections
from streams.kafka.admin import TopicAdmin

__all__ = ["ReadinessCheck", "kafka_ready", "operations_router", "postgres_ready"]

ReadinessCheck = Callable[[], tuple[bool, str]]


class _Check(BaseModel):
    ok: bool
    detail: str


class Readiness(BaseModel):
    """``/ready``'s answer (the document's; the route writes it as JSON)."""

    ready: bool
    checks: dict[str, _Check]


def kafka_ready(admin: TopicAdmin, topics: Sequence[str]) -> ReadinessCheck:
    """Kafka metadata reachable, with every one of ``topics``."""

    def check() -> tuple[bool, str]:
        try:
            existing = admin.existing()
        except Exception as exc:
            return False, f"Kafka metadata unreachable: {exc}"
        missing = [t for t in topics if t not in existing]
        if missing:
            return False, f"topics missing: {', '.join(missing)} (run `kernel topics ensure`)"
        return True, "Kafka metadata reachable"

    return check


def postgres_ready(db: Connections) -> ReadinessCheck:
    """Postgres reachable, with no migration pending."""

    def check() -> tuple[bool, str]:
        from projections.migrate import pending  # noqa: PLC0415

        try:
            with db.connection() as conn:
                todo = pending(conn)
        except Exception as exc:
            return False, f"Postgres unreachable: {exc}"
        if todo:
            return False, f"{len(todo)} migration(s) pending (run `kernel db migrate`)"
        return True, "Postgres reachable, migrations current"

    return check


def operations_router(readiness: Mapping[str, ReadinessCheck]) -> APIRouter:
    """``/ready`` answers 200 only when every check of ``readiness`` passes."""
    router = APIRouter(tags=["operations"])

    @router.get("/health")
    async def health() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @router.get(
        "/ready",
        responses={
            200: {"model": Readiness, "description": "every check passed"},
            503: {"model": Readiness, "description": "some check failed; detail says which"},
        },
    )
    async def ready() -> Response:
        """Kafka reachable with topics, Postgres reachable with migrations current."""
        results: dict[str, Any] = {}
        for name, check in readiness.items():
            ok, detail = await asyncio.to_thread(check)
            results[name] = {"ok": ok, "detail": detail}
        ok_all = all(r["ok"] for r in results.values())
        return JSONResponse(
            {"ready": ok_all, "checks": results}, status_code=200 if ok_all else 503
        )

    @router.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {
                "description": "Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
