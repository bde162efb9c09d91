"""The HTTP API: one FastAPI app, assembled from the routers of each area.

Entry points stay thin: each area contributes an ``APIRouter`` built from the
composition root's :class:`~ops.bootstrap.Kernel`; :func:`create_app` adds
health, readiness and Prometheus metrics (:mod:`ops.http.operations`), the
error handlers (:mod:`ops.http.errors`: a bad request is a 4xx naming the
parameter, a dependency down a 503, only a fault of this server a 500) and
the front door (:mod:`ops.http.front_door`), and ``kernel api`` serves it
with uvicorn. OpenAPI is published at ``/openapi.json`` (docs at ``/docs``),
the hot routes included (:mod:`ops.http.openapi`).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI

from ops.bootstrap import Kernel
from ops.health import lag_check
from ops.http.audit import audit_router
from ops.http.errors import install_error_handlers
from ops.http.front_door import FrontDoor, HotRoute
from ops.http.openapi import document_hot_routes
from ops.http.operations import ReadinessCheck, operations_router
from ops.http.sentinel_check import check_router
from ops.http.sentinel_explain import explain_router

__all__ = ["build_app", "create_app"]


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
    every = [operations_router(kernel, checks), *routers]
    for router in every:
        app.include_router(router)
    hot = [r for router in routers for r in router.routes if isinstance(r, HotRoute)]
    document_hot_routes(
        app,
        [(r.path, r.method, r.operation) for r in hot if r.operation is not None],
        order=[getattr(r, "path", "") for router in every for r in router.routes],
    )
    app.add_middleware(FrontDoor, hot=hot)  # added last: the outermost of ours
    return app


def build_app(kernel: Kernel) -> FastAPI:
    """The full API of the composition root: every area's routers."""
    routers: list[APIRouter] = [
        check_router(kernel),
        explain_router(kernel),
        audit_router(kernel),
    ]
    return create_app(kernel, routers, checks={"lag": lag_check(kernel)})
