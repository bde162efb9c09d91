"""The outermost middleware: stamp arrival, admit or refuse the caller, serve hot routes.

Every request passes the :class:`~ops.http.access.Gate` here, before any
route: the caller's identity (client certificate or bearer token) must hold a
role the route's rule names, else the answer is 401/403 as JSON and the refusal
goes to the access log (:mod:`ops.http.access_log`). An admitted caller is
left in the scope (:data:`PRINCIPAL`) for the routes that record who called.

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

import orjson
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ops.http.access import Gate, Principal, Refusal
from ops.http.access_log import AccessLog
from ops.http.openapi import HotOperation

__all__ = ["ARRIVED", "PRINCIPAL", "FrontDoor", "HotRoute", "principal_of"]

ARRIVED = "kernel.arrived"
"""ASGI scope key: ``time.perf_counter()`` when the request reached the app."""
PRINCIPAL = "kernel.principal"
"""ASGI scope key: the admitted caller's :class:`~ops.http.access.Principal` (or None)."""


def principal_of(scope: Scope) -> Principal | None:
    found = scope.get(PRINCIPAL)
    return found if isinstance(found, Principal) else None


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
    """Pure ASGI middleware: stamp :data:`ARRIVED`; admit the caller; serve hot routes."""

    def __init__(
        self,
        app: ASGIApp,
        hot: Sequence[HotRoute] = (),
        *,
        gate: Gate,
        access_log: AccessLog | None = None,
    ) -> None:
        self.app = app
        self.hot = {(r.method, r.path): r.endpoint_app for r in hot}
        self.gate = gate
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[ARRIVED] = time.perf_counter()
            admitted = self.gate.admit(scope)
            if isinstance(admitted, Refusal):
                await self._refuse(scope, send, admitted)
                return
            scope[PRINCIPAL] = admitted
            endpoint = self.hot.get((scope["method"], scope["path"]))
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, refusal: Refusal) -> None:
        if self.access_log is not None:
            self.access_log.refused(dict(scope), refusal)
        body = orjson.dumps(
            {
                "error": "unauthenticated" if refusal.status == 401 else "forbidden",
                "field": None,
                "reason": refusal.reason,
            }
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if refusal.status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="kernel"'))
        await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
