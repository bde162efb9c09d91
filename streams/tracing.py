"""W3C trace context carried in Kafka headers, across every processor.

A producer with tracing on stamps each record with a ``traceparent`` header
(``00-<32 hex trace id>-<16 hex span id>-01``): a child of the trace being
processed, or a new root. Runners read the header of each input record, make
its trace current while the step runs (so logs carry the trace id), and stamp
every output with a child span of it: one trace follows an action through
SentinelNet and the chain signer. Propagation is always on; starting new traces
is behind KERNEL_TRACING (off by default). Exporting spans to an OpenTelemetry
collector is not built yet: the header is the interoperable part.
"""

from __future__ import annotations

import contextvars
import re
import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

__all__ = [
    "HEADER",
    "child_of",
    "current",
    "current_trace_id",
    "new_root",
    "trace_id",
    "traced",
    "traceparent_of",
]

HEADER = "traceparent"
_FORMAT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_CURRENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("traceparent", default=None)


def new_root() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def child_of(parent: str) -> str:
    match = _FORMAT.match(parent)
    if match is None:
        return new_root()
    return f"00-{match.group(1)}-{secrets.token_hex(8)}-{match.group(3)}"


def trace_id(traceparent: str | None) -> str | None:
    match = _FORMAT.match(traceparent or "")
    return match.group(1) if match else None


def current() -> str | None:
    return _CURRENT.get()


def current_trace_id() -> str | None:
    return trace_id(_CURRENT.get())


@contextmanager
def traced(traceparent: str | None) -> Iterator[None]:
    """Make ``traceparent`` the current trace for the duration of the block."""
    token = _CURRENT.set(traceparent if trace_id(traceparent) else None)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def traceparent_of(
    headers: Mapping[str, str | bytes | None] | Sequence[tuple[str, str | bytes | None]] | None,
) -> str | None:
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    for key, value in pairs:
        if key == HEADER and value is not None:
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
            return text if trace_id(text) else None
    return None


def outgoing(start_new: bool) -> list[tuple[str, str | bytes | None]] | None:
    """The header for a record produced now: a child of the current trace, a new
    root when ``start_new``, or none."""
    parent = _CURRENT.get()
    if parent is not None:
        return [(HEADER, child_of(parent).encode())]
    if start_new:
        return [(HEADER, new_root().encode())]
    return None
