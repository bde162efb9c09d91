"""Structured logs: one JSON object per line, with the ids that tie lines together.

:func:`configure` installs a :class:`JsonLinesFormatter` on the root logger
for a named service. The ids an operator follows across processors -- the
event id, the policyCheck id, the trace id -- are carried in context
variables: a runner sets them once per record with :func:`log_context` and
every line logged inside, by any module, carries them. ``extra={...}`` on a
single call adds fields to that line. Lines are ``orjson``-encoded; values
that are not JSON types are written with ``str()`` rather than dropped.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from streams.tracing import current_trace_id

__all__ = ["JsonLinesFormatter", "configure", "current_context", "log_context"]

_CONTEXT: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("kernel_log_context")

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def current_context() -> dict[str, str]:
    return dict(_CONTEXT.get({}))


@contextmanager
def log_context(
    *,
    event_id: str | None = None,
    policy_check_id: str | None = None,
    trace_id: str | None = None,
    **more: str,
) -> Iterator[None]:
    """Add ids to every line logged inside the block (nested blocks add to outer ones)."""
    fields = dict(current_context())
    named = {"eventId": event_id, "policyCheckId": policy_check_id, "traceId": trace_id}
    fields.update({k: v for k, v in named.items() if v is not None})
    fields.update(more)
    token = _CONTEXT.set(fields)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class JsonLinesFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(current_context())
        if "traceId" not in line:
            trace = current_trace_id()  # the trace of the record being processed, if any
            if trace is not None:
                line["traceId"] = trace
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure(service: str, *, level: int = logging.INFO, stream: IO[str] | None = None) -> None:
    """JSON lines on ``stream`` (stderr) for the whole process; replaces earlier handlers."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLinesFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
