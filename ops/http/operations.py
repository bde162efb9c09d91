"""``GET /health``, ``GET /ready``, ``GET /metrics``: the API process, for operators.

``/ready`` runs each readiness check on a worker thread: Kafka metadata
reachable with the audited topics, Postgres reachable with migrations current,
and whatever the app adds (the lag check); 503 unless all pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ops.bootstrap import Kernel

__all__ = ["ReadinessCheck", "operations_router"]

ReadinessCheck = Callable[[], tuple[bool, str]]


def _kafka_check(kernel: Kernel) -> ReadinessCheck:
    def check() -> tuple[bool, str]:
        try:
            topics = kernel.topic_admin().existing()
        except Exception as exc:
            return False, f"Kafka metadata unreachable: {exc}"
        missing = [t for t in kernel.names.audited() if t not in topics]
        if missing:
            return False, f"topics missing: {', '.join(missing)} (run `kernel topics ensure`)"
        return True, "Kafka metadata reachable"

    return check


def _postgres_check(kernel: Kernel) -> ReadinessCheck:
    def check() -> tuple[bool, str]:
        from projections.migrate import pending  # noqa: PLC0415

        try:
            with kernel.connect() as conn:
                todo = pending(conn)
        except Exception as exc:
            return False, f"Postgres unreachable: {exc}"
        if todo:
            return False, f"{len(todo)} migration(s) pending (run `kernel db migrate`)"
        return True, "Postgres reachable, migrations current"

    return check


def operations_router(
    kernel: Kernel, checks: Mapping[str, ReadinessCheck] | None = None
) -> APIRouter:
    """``checks`` are added to the Kafka and Postgres ones (or replace one of the same name)."""
    router = APIRouter(tags=["operations"])
    readiness = {"kafka": _kafka_check(kernel), "postgres": _postgres_check(kernel)}
    readiness.update(checks or {})

    @router.get("/health")
    async def health() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @router.get("/ready")
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

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
