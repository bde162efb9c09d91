"""How the API answers an error: a status that says whose fault it was, and a JSON body.

Every error answer is ``{"error", "field", "reason"}`` (``field`` names the
parameter or body field as the caller spelled it, or is ``null``):

- :class:`~schemas.errors.ValidationError`, :class:`~schemas.errors.SchemaError`
  and FastAPI's own parameter validation: 422 (the check body's framing
  errors keep their 400 and 413);
- :class:`~schemas.errors.StoreUnavailableError` (Postgres down) and
  :class:`~schemas.errors.LogUnavailableError` (Kafka): 503 with
  ``Retry-After`` -- the request may succeed later, nothing is wrong with it;
- anything else is a fault of this server: logged with its traceback and
  answered 500 with a body that points at the log, never the exception text.

The sync check's raw endpoint does not pass through these handlers (it maps
its own errors, see :mod:`ops.http.sentinel_check`); the read routes do.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from schemas.errors import (
    KernelError,
    LogUnavailableError,
    SchemaError,
    StoreUnavailableError,
    ValidationError,
)
from streams.sentinel.check_request import MalformedRequestError, RequestTooLargeError

__all__ = [
    "UnsupportedMediaTypeError",
    "error_body",
    "install_error_handlers",
    "validation_status",
]

log = logging.getLogger(__name__)


def error_body(error: str, field: str | None, reason: str, **extra: Any) -> dict[str, Any]:
    return {"error": error, "field": field, "reason": reason, **extra}


class UnsupportedMediaTypeError(ValidationError):
    """The body's ``Content-Type`` is not one the route reads (HTTP 415)."""


def validation_status(exc: ValidationError) -> int:
    if isinstance(exc, RequestTooLargeError):
        return 413
    if isinstance(exc, UnsupportedMediaTypeError):
        return 415
    if isinstance(exc, MalformedRequestError):
        return 400
    return 422


def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ValidationError)
    body = error_body("invalid request", exc.field, exc.reason)
    return JSONResponse(body, status_code=validation_status(exc))


def _schema(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(error_body("invalid request", None, str(exc)), status_code=422)


def _framework_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # The offending input is not echoed: it may be huge, or text JSON cannot carry.
    detail: list[dict[str, Any]] = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
        for e in exc.errors()
    ]
    loc: list[Any] = detail[0]["loc"] if detail else []
    reason: str = detail[0]["msg"] if detail else "invalid request"
    field = str(loc[-1]) if len(loc) > 1 else None  # ["query", "limit"]: the parameter
    body = error_body("invalid request", field, reason, detail=detail)
    return JSONResponse(body, status_code=422)


def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    what = "postgres" if isinstance(exc, StoreUnavailableError) else "kafka"
    log.warning("%s %s: %s unavailable: %s", request.method, request.url.path, what, exc)
    body = error_body(
        "service unavailable", None, f"{what} is unavailable; retry later", dependency=what
    )
    return JSONResponse(body, status_code=503, headers={"retry-after": "1"})


def _server_fault(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    body = error_body("internal error", None, "the server failed; the cause is in its log")
    return JSONResponse(body, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ValidationError, _invalid)
    app.add_exception_handler(SchemaError, _schema)
    app.add_exception_handler(RequestValidationError, _framework_validation)
    app.add_exception_handler(StoreUnavailableError, _unavailable)
    app.add_exception_handler(LogUnavailableError, _unavailable)
    app.add_exception_handler(KernelError, _server_fault)  # ConfigError and the like
    app.add_exception_handler(Exception, _server_fault)
