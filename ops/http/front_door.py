"""The outermost middleware: stamp each request's arrival; serve hot routes without routing.

:class:`FrontDoor` stamps each request's arrival in its ASGI scope
(:data:`ARRIVED`), so a handler with a time budget (the sync check) counts
from there, not from when routing reached it. It also hands a router's
:class:`HotRoute` -- a bare ASGI endpoint on an exact method and path -- its
requests directly: FastAPI's exception, exit-stack and routing layers cost
~0.1 ms a request, a tenth of a whole sync check, and a bare endpoint uses
none of them. Server errors are still caught by Starlette's outer layer, and
the same route is in the app's routing too (what a request with another
method, or an app without this middleware, goes through).

FastAPI does not document a bare route; a hot route carries its
:class:`~ops.http.openapi.HotOperation`, which :mod:`ops.http.openapi` adds
to the document.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ops.http.openapi import HotOperation

__all__ = ["ARRIVED", "FrontDoor", "HotRoute"]

ARRIVED = "kernel.arrived"
"""ASGI scope key: ``time.perf_counter()`` when the request reached the app."""


class HotRoute(Route):
    """A route to a bare ASGI ``endpoint`` that :class:`FrontDoor` serves directly.

    ``endpoint`` is an ASGI app object, not a function: routing would take a
    function for a request handler. ``operation``, if given, is what the
    OpenAPI document says of it.
    """

    def __init__(
        self,
        path: str,
        endpoint: ASGIApp,
        method: str,
        operation: HotOperation | None = None,
    ) -> None:
        super().__init__(path, endpoint, methods=[method], include_in_schema=False)
        self.method = method
        self.endpoint_app = endpoint
        self.operation = operation


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
