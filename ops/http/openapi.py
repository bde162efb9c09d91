"""The OpenAPI document of the routes FastAPI does not see: the hot routes.

A :class:`~ops.http.front_door.HotRoute` is a bare ASGI endpoint, outside
FastAPI's routing, so FastAPI's generator skips it. Rather than a second,
never-routed FastAPI route on the same path (whose handler would have to
exist and must never run), the route carries a :class:`HotOperation` built
from the pydantic models of its request and answers, and
:func:`document_hot_routes` adds it to the document FastAPI generates: the
request schema inline, each answer's model a ``$ref`` into
``components/schemas``, paths in routing order, as FastAPI would have
written them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.models import OpenAPI
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

__all__ = [
    "TEXT_PATTERN",
    "ErrorBody",
    "HotOperation",
    "document_hot_routes",
    "document_security",
    "error_responses",
]

_REF = "#/components/schemas/{model}"

TEXT_PATTERN = "^[^\\u0000]*$"
"""A text parameter's pattern: no NUL (:func:`ops.http.params.check_text` refuses it)."""


class ErrorBody(BaseModel):
    """Every error answer: what went wrong, the parameter or field it names, why."""

    error: str
    field: str | None = Field(None, description="the parameter or body field, as sent")
    reason: str


_ERROR_WHAT = {
    400: "malformed or non-I-JSON body",
    404: "no such resource",
    413: "body over the size limit",
    415: "Content-Type is not application/json",
    422: "a parameter or field is invalid; field names it",
    503: "a dependency (Postgres or Kafka) is unavailable; retry after Retry-After",
    504: "the projection did not reach the position in time",
}


def error_responses(*statuses: int, **what: str) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses=`` for error answers of ``statuses`` (an :class:`ErrorBody`);
    ``what`` overrides a description (``s422="..."``)."""
    return {
        status: {
            "model": ErrorBody,
            "description": what.get(f"s{status}", _ERROR_WHAT.get(status, "error")),
        }
        for status in statuses
    }


@dataclass(frozen=True)
class HotOperation:
    """One operation of a hot route, as the OpenAPI document shows it.

    ``responses`` maps a status to the model of its JSON body and a description.
    """

    operation_id: str
    summary: str
    tags: tuple[str, ...]
    request: type[BaseModel]
    responses: Mapping[int, tuple[type[BaseModel], str]]
    request_description: str | None = None  # e.g. the body's size limit

    def render(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The operation object and the component schemas its ``$ref``\\s name."""
        models = list(dict.fromkeys(model for model, _ in self.responses.values()))
        refs, defs = models_json_schema(
            [(model, "serialization") for model in models], ref_template=_REF
        )
        responses = {
            str(status): {
                "description": description,
                "content": {"application/json": {"schema": refs[model, "serialization"]}},
            }
            for status, (model, description) in self.responses.items()
        }
        operation = {
            "tags": list(self.tags),
            "summary": self.summary,
            "operationId": self.operation_id,
            "requestBody": {
                **({"description": self.request_description} if self.request_description else {}),
                "content": {"application/json": {"schema": self.request.model_json_schema()}},
                "required": True,
            },
            "responses": responses,
        }
        return operation, defs.get("$defs", {})


def document_hot_routes(
    app: FastAPI, hot: Sequence[tuple[str, str, HotOperation]], order: Sequence[str]
) -> None:
    """Make ``app.openapi()`` include each ``(path, method, operation)`` of ``hot``.

    ``order`` is the app's paths in routing order, the order of the document's
    paths. The result goes through the same encoding as FastAPI's own document
    (``None`` left out), and is cached in ``app.openapi_schema`` as FastAPI's is.
    """
    if not hot:
        return
    rendered = [(path, method.lower(), *op.render()) for path, method, op in hot]
    rank = {path: i for i, path in enumerate(dict.fromkeys(order))}
    generate = app.openapi  # FastAPI's own: cached, regenerated when the routes change
    done: list[dict[str, Any]] = []  # the last document made here

    def openapi() -> dict[str, Any]:
        spec = generate()
        if done and spec is done[0]:
            return spec
        paths: dict[str, Any] = dict(spec.get("paths", {}))
        schemas: dict[str, Any] = dict(spec.get("components", {}).get("schemas", {}))
        for path, method, operation, defs in rendered:
            paths[path] = {**paths.get(path, {}), method: operation}
            schemas.update(defs)
        ordered = sorted(paths.items(), key=lambda kv: rank.get(kv[0], len(rank)))
        components = {**spec.get("components", {}), "schemas": dict(sorted(schemas.items()))}
        full = {**spec, "paths": dict(ordered), "components": components}
        encoded: dict[str, Any] = jsonable_encoder(
            OpenAPI(**full), by_alias=True, exclude_none=True
        )
        done[:] = [encoded]
        app.openapi_schema = encoded
        return encoded

    # FastAPI's documented way to extend the document: replace the app's openapi().
    app.openapi = openapi  # type: ignore[method-assign]


_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "field": {"type": ["string", "null"]},
        "reason": {"type": "string"},
    },
    "required": ["error", "reason"],
}


def document_security(app: FastAPI, roles_of: Callable[[str, str], frozenset[str] | None]) -> None:
    """Make ``app.openapi()`` say how to authenticate and which roles each operation needs.

    Two schemes: a bearer token (``kernel tokens create``) and mutual TLS. An
    open operation has ``security: []``; every other one requires either
    scheme, lists its roles (``x-kernel-roles``) and declares the 401 and 403
    answers the front door gives.
    """
    generate = app.openapi
    done: list[dict[str, Any]] = []  # [source document, the document made from it]

    def openapi() -> dict[str, Any]:
        spec = generate()
        if done and done[0] is spec:
            return done[1]
        full = dict(spec)
        components = dict(full.get("components", {}))
        components["securitySchemes"] = {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "kernel tokens create",
            },
            "mutualTLS": {"type": "mutualTLS", "description": "a client certificate of the CA"},
        }
        schemas = dict(components.get("schemas", {}))
        schemas["AccessError"] = _ERROR
        components["schemas"] = schemas
        full["components"] = components
        paths: dict[str, Any] = {}
        for path, operations in full.get("paths", {}).items():
            paths[path] = {}
            for method, operation in operations.items():
                op = dict(operation)
                roles = roles_of(method.upper(), _concrete(path))
                if roles is not None and not roles:
                    op["security"] = []
                else:
                    op["security"] = [{"bearerAuth": []}, {"mutualTLS": []}]
                    op["x-kernel-roles"] = sorted(roles or ())
                    responses = dict(op.get("responses", {}))
                    ref = {"$ref": "#/components/schemas/AccessError"}
                    for status, what in (("401", "no or bad credentials"), ("403", "no role")):
                        responses.setdefault(
                            status,
                            {"description": what, "content": {"application/json": {"schema": ref}}},
                        )
                    op["responses"] = responses
                paths[path][method] = op
        full["paths"] = paths
        done[:] = [spec, full]
        return full

    app.openapi = openapi  # type: ignore[method-assign]


def _concrete(path: str) -> str:
    """A path template with its parameters filled, for matching the access rules."""
    return "/".join("x" if part.startswith("{") else part for part in path.split("/"))
