"""The HTTP API: one FastAPI app, assembled from the routers of each area.

Entry points stay thin: each area contributes an ``APIRouter`` built from the
composition root's :class:`~ops.bootstrap.Kernel`; this module adds health,
readiness and Prometheus metrics, and ``kernel api`` serves it with uvicorn.
OpenAPI is published at ``/openapi.json`` (docs at ``/docs``).

Our outermost middleware, :class:`FrontDoor`, stamps each request's arrival in
its ASGI scope (:data:`ARRIVED`), so a handler with a time budget (the sync
check) counts from there, not from when routing reached it. It also hands a
router's :class:`HotRoute` -- a bare ASGI endpoint on an exact method and path
-- its requests directly: FastAPI's exception, exit-stack and routing layers
cost ~0.1 ms a request, a tenth of a whole sync check, and a bare endpoint uses
none of them. Server errors are still caught by Starlette's outer layer, and
the same route is in the app's routing too (what a request with another
method, or an app without this middleware, goes through).

Errors are answered by :mod:`projections.api.errors`: a bad request is a 4xx
naming the parameter, a dependency down a 503, and only a fault of this
server a 500 (logged with its traceback).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ops.bootstrap import Kernel
from projections.api.errors import install_error_handlers

__all__ = ["ARRIVED", "FrontDoor", "HotRoute", "ReadinessCheck", "create_app"]

ReadinessCheck = Callable[[], tuple[bool, str]]

ARRIVED = "kernel.arrived"
"""ASGI scope key: ``time.perf_counter()`` when the request reached the app."""


class HotRoute(Route):
    """A route to a bare ASGI ``endpoint`` that :class:`FrontDoor` serves directly.

    ``endpoint`` is an ASGI app object, not a function: routing would take a
    function for a request handler.
    """

    def __init__(self, path: str, endpoint: ASGIApp, method: str) -> None:
        super().__init__(path, endpoint, methods=[method], include_in_schema=False)
        self.method = method
        self.endpoint_app = endpoint


class FrontDoor:
    """Pure ASGI middleware: stamp :data:`ARRIVED`; serve hot routes without routing."""

    def __init__(self, app: ASGIApp, hot: Sequence[HotRoute] = ()) -> None:
        self.app = app
        self.hot = {(r.method, r.path): r.endpoint_app for r in hot}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[ARRIVED] = time.perf_counter()
            endpoint = self.hot.get((scope["method"], scope["path"]))
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)


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


def create_app(
    kernel: Kernel,
    routers: Sequence[APIRouter] = (),
    checks: dict[str, ReadinessCheck] | None = None,
) -> FastAPI:
    app = FastAPI(
        title="Kernel",
        version="0.1.0",
        description="Policy enforcement, explain and signed audit queries.",
    )
    install_error_handlers(app)  # 4xx for bad requests, 503 for a dependency down
    readiness = {"kafka": _kafka_check(kernel), "postgres": _postgres_check(kernel)}
    readiness.update(checks or {})

    @app.get("/health", tags=["operations"])
    async def health() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/ready", tags=["operations"])
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

    @app.get("/metrics", tags=["operations"])
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router)
    hot = [r for router in routers for r in router.routes if isinstance(r, HotRoute)]
    app.add_middleware(FrontDoor, hot=hot)  # added last: the outermost of ours
    return app


def build_app(kernel: Kernel) -> FastAPI:
    """The full API of the composition root: every area's routers."""
    from ops.health import lag_check  # noqa: PLC0415
    from projections.api.audit import audit_router  # noqa: PLC0415
    from projections.api.sentinel_check import check_router  # noqa: PLC0415
    from projections.api.sentinel_explain import explain_router  # noqa: PLC0415

    routers: list[APIRouter] = [
        check_router(kernel),
        explain_router(kernel),
        audit_router(kernel),
    ]
    return create_app(kernel, routers, checks={"lag": lag_check(kernel)})
