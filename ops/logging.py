"""Structured logs: one JSON object per line, with the ids that tie lines together.

:func:`configure` installs a :class:`JsonLinesFormatter` on the root logger
for a named service. The ids an operator follows across processors -- the
event id, the policyCheck id, the trace id -- are carried in context
variables: a runner sets them once per record with :func:`log_context` and
every line logged inside, by any module, carries them. ``extra={...}`` on a
single call adds fields to that line. Lines are ``orjson``-encoded; values
that are not JSON types are written with ``str()`` rather than dropped.

librdkafka repeats itself while a broker is away (a "Connection refused" line
per reconnect, every few tens of milliseconds per client): :class:`RepeatFilter`
on the ``kernel.librdkafka`` logger lets one line of a kind through per
``window_s`` and notes on the next one how many it held back.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from streams.tracing import current_trace_id

__all__ = ["JsonLinesFormatter", "RepeatFilter", "configure", "current_context", "log_context"]

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


_VARYING = re.compile(r"\d+")  # counters, millisecond figures and client numbers vary


class RepeatFilter(logging.Filter):
    """One record per kind (its message without digits) per ``window_s``.

    The next record of a kind after the window carries ``repeated``: how many
    like it were held back. Kinds are kept in a small table (oldest dropped).
    """

    def __init__(self, window_s: float = 10.0, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.window_s = window_s
        self._clock = clock
        self._seen: dict[str, tuple[float, int]] = {}  # kind -> (last let through, held back)

    def filter(self, record: logging.LogRecord) -> bool:
        kind = _VARYING.sub("#", record.getMessage())
        now = self._clock()
        last = self._seen.get(kind)
        if last is not None and now - last[0] < self.window_s:
            self._seen[kind] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            record.repeated = last[1]
        if len(self._seen) >= 256:
            self._seen.pop(next(iter(self._seen)))
        self._seen[kind] = (now, 0)
        return True


def configure(service: str, *, level: int = logging.INFO, stream: IO[str] | None = None) -> None:
    """JSON lines on ``stream`` (stderr) for the whole process; replaces earlier handlers."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLinesFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    librdkafka = logging.getLogger("kernel.librdkafka")
    for old_filter in list(librdkafka.filters):
        if isinstance(old_filter, RepeatFilter):
            librdkafka.removeFilter(old_filter)
    librdkafka.addFilter(RepeatFilter())
