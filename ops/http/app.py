"""The HTTP API: one FastAPI app, assembled from the routers of each area.

Entry points stay thin: each area contributes an ``APIRouter`` built over the
narrow ports the composition root hands it (:meth:`ops.bootstrap.Kernel.api`:
a Postgres pool for the read routes, a factory of the check's parts for the
check); :func:`create_app` adds
health, readiness and Prometheus metrics (:mod:`ops.http.operations`), the
error handlers (:mod:`ops.http.errors`: a bad request is a 4xx naming the
parameter, a dependency down a 503, only a fault of this server a 500) and
the front door (:mod:`ops.http.front_door`), and ``kernel api`` serves it
with uvicorn. OpenAPI is published at ``/openapi.json`` (docs at ``/docs``),
the hot routes included (:mod:`ops.http.openapi`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI

from ops.http.access import Gate, required_roles
from ops.http.access_log import AccessLog
from ops.http.errors import install_error_handlers
from ops.http.front_door import FrontDoor, HotRoute
from ops.http.openapi import document_hot_routes, document_security
from ops.http.operations import ReadinessCheck, operations_router

if TYPE_CHECKING:
    from ops.bootstrap import Kernel

__all__ = ["build_app", "create_app"]


def create_app(
    routers: Sequence[APIRouter] = (),
    checks: Mapping[str, ReadinessCheck] | None = None,
    on_close: Callable[[], None] | None = None,
    *,
    gate: Gate,
    access_log: AccessLog | None = None,
) -> FastAPI:
    """The app of ``routers``, with ``/health``, ``/metrics`` and ``/ready`` over ``checks``,
    every request admitted by ``gate`` (refusals to ``access_log``); ``on_close``
    runs when the app shuts down, after the routers' own lifespans (the
    composition root closes its pools)."""
    app = FastAPI(
        title="Kernel",
        version="0.1.0",
        description="Policy enforcement, explain and signed audit queries.",
    )
    app.state.access_log = access_log
    install_error_handlers(app)  # 4xx for bad requests, 503 for a dependency down
    every = [operations_router(checks or {}), *routers]
    if access_log is not None:
        every.insert(0, _recording(access_log))  # stops after the routes, before on_close
    if on_close is not None:
        every.insert(0, _closing(on_close))
    for router in every:
        app.include_router(router)
    hot = [r for router in routers for r in router.routes if isinstance(r, HotRoute)]
    document_hot_routes(
        app,
        [(r.path, r.method, r.operation) for r in hot if r.operation is not None],
        order=[getattr(r, "path", "") for router in every for r in router.routes],
    )
    document_security(app, required_roles)
    app.add_middleware(FrontDoor, hot=hot, gate=gate, access_log=access_log)  # outermost
    return app


def _closing(close: Callable[[], None]) -> APIRouter:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            close()

    return APIRouter(lifespan=lifespan)


def _recording(access_log: AccessLog) -> APIRouter:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await access_log.aclose()

    return APIRouter(lifespan=lifespan)


def build_app(kernel: Kernel) -> FastAPI:
    """The full API of the composition root (:meth:`~ops.bootstrap.Kernel.api`)."""
    return kernel.api()
