"""W3C trace context in Kafka headers, and OpenTelemetry spans, across every processor.

A record that is part of a trace carries a ``traceparent`` header
(``00-<32 hex trace id>-<16 hex span id>-<flags>``), read and written by
OpenTelemetry's :class:`TraceContextTextMapPropagator`. The spans:

* a producer makes a PRODUCER span per published record (:func:`producer_span`),
  a child of the current span, or a new root when it starts traces
  (KERNEL_TRACING, off by default), and the record carries that span;
* a runner makes a CONSUMER span per input record that carries a
  ``traceparent`` (:func:`consuming`), a child of the record's span, current
  while the step runs (so logs carry the trace id); the step's outputs carry it;
* a projector makes one per projected record (:func:`processed`).

One trace thus follows an action from its producer through SentinelNet and the
chain signer into Postgres. Processors continue traces and never start one: an
input without ``traceparent`` gets no span, and its outputs no header.

Spans go through the OpenTelemetry API's global tracer provider. ``ops`` sets
one up (:mod:`ops.telemetry`) only when OTEL_EXPORTER_OTLP_ENDPOINT names a
collector; until then this module's own tracer makes non-recording spans that
only get fresh span ids, so the headers are the same either way and nothing
is recorded. The hot path without a trace does no work: ``msg.headers()`` is
None, and no span, context or header is made.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.trace import (
    NonRecordingSpan,
    ProxyTracerProvider,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
    Tracer,
    format_trace_id,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util import types

__all__ = [
    "HEADER",
    "Headers",
    "child_of",
    "consuming",
    "current",
    "current_trace_id",
    "end_producer_spans",
    "failed",
    "headers_of",
    "in_trace",
    "new_root",
    "outgoing",
    "processed",
    "producer_span",
    "recording",
    "trace_id",
    "traced",
    "traceparent_of",
]

HEADER = "traceparent"
#: Kafka headers as confluent-kafka gives and takes them.
Headers = Mapping[str, str | bytes | None] | Sequence[tuple[str, str | bytes | None]]
OutHeaders = list[tuple[str, str | bytes | None]]

_PROPAGATOR = TraceContextTextMapPropagator()
_NO_SPAN: AbstractContextManager[None] = contextlib.nullcontext()


class _KafkaHeaders(Getter[Headers]):
    """Reads text headers from confluent-kafka's list of ``(key, bytes)`` (or a mapping)."""

    def get(self, carrier: Headers, key: str) -> list[str] | None:
        pairs = carrier.items() if isinstance(carrier, Mapping) else carrier
        found = [
            value.decode("ascii", "replace") if isinstance(value, bytes) else value
            for k, value in pairs
            if k == key and value is not None
        ]
        return found or None

    def keys(self, carrier: Headers) -> list[str]:
        pairs = carrier.items() if isinstance(carrier, Mapping) else carrier
        return [k for k, _ in pairs]


class _OutHeaders(Setter[OutHeaders]):
    def set(self, carrier: OutHeaders, key: str, value: str) -> None:
        carrier.append((key, value.encode()))


_GETTER = _KafkaHeaders()
_SETTER = _OutHeaders()


class _PropagatingTracer(Tracer):
    """The tracer while no provider is configured: non-recording spans with fresh ids.

    The API's own no-op tracer would hand back the parent's span, so every
    record downstream would carry its input's span id; this one gives each
    span its own id (the trace id and flags of its parent, or a new sampled
    trace for a root), as an SDK tracer would, and records nothing.
    """

    def start_span(  # noqa: PLR0917 (the API's signature)
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Any = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        parent = trace.get_current_span(context).get_span_context()
        span_id = random.getrandbits(64) or 1
        if parent.is_valid:
            ids = SpanContext(
                parent.trace_id, span_id, False, parent.trace_flags, parent.trace_state
            )
        else:
            trace_id = random.getrandbits(128) or 1
            ids = SpanContext(trace_id, span_id, False, TraceFlags(TraceFlags.SAMPLED))
        return NonRecordingSpan(ids)

    def start_as_current_span(  # type: ignore[override]  # noqa: PLR0917
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Any = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> AbstractContextManager[Span]:
        return _Current(self.start_span(name, context, kind))


class _Current(AbstractContextManager[Span]):
    """A non-recording span made current for a block: nothing to end or record, so no
    more than attaching and detaching its context (a third of what ``use_span`` costs)."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span

    def __enter__(self) -> Span:
        self._token = context_api.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(self, *exc: object) -> None:
        context_api.detach(self._token)


_PROPAGATING = _PropagatingTracer()
_GLOBAL = trace.get_tracer("kernel")  # delegates to the provider once ops sets one


def recording() -> bool:
    """Whether spans are recorded (a tracer provider was configured), not only propagated."""
    return not isinstance(trace.get_tracer_provider(), ProxyTracerProvider)


def _tracer() -> Tracer:
    return _GLOBAL if recording() else _PROPAGATING


# -- the header -------------------------------------------------------------------
def _extract(headers: Headers | None) -> Context | None:
    """The context of the span a record carries, or None (no header, or not a valid one)."""
    if not headers:
        return None
    ctx = _PROPAGATOR.extract(headers, Context(), _GETTER)
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def headers_of(span: Span | None) -> OutHeaders | None:
    """The headers that make a record carry ``span`` (None for no span)."""
    if span is None:
        return None
    out: OutHeaders = []
    _PROPAGATOR.inject(out, trace.set_span_in_context(span, Context()), _SETTER)
    return out or None


def _text(span: Span) -> str | None:
    out = headers_of(span)
    if not out:
        return None
    value = out[0][1]
    return value.decode() if isinstance(value, bytes) else value


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a ``traceparent`` value, or None when it is not a valid one."""
    if not traceparent:
        return None
    ctx = _extract([(HEADER, traceparent)])
    if ctx is None:
        return None
    return format_trace_id(trace.get_current_span(ctx).get_span_context().trace_id)


def traceparent_of(headers: Headers | None) -> str | None:
    """The record's ``traceparent`` header as sent, or None when absent or invalid."""
    found = _GETTER.get(headers, HEADER) if headers else None
    if found is None:
        return None
    return found[0] if _extract(headers) is not None else None


def new_root() -> str:
    """A ``traceparent`` that starts a new trace (nothing recorded)."""
    return _text(_PROPAGATING.start_span("root", Context())) or ""


def child_of(parent: str) -> str:
    """A ``traceparent`` in ``parent``'s trace with a new span id; a new root if invalid."""
    ctx = _extract([(HEADER, parent)]) or Context()
    return _text(_PROPAGATING.start_span("child", ctx)) or ""


# -- the current trace ---------------------------------------------------------------
def current() -> str | None:
    """The ``traceparent`` of the current span, or None outside any trace."""
    span = trace.get_current_span()
    return _text(span) if span.get_span_context().is_valid else None


def in_trace() -> bool:
    """Whether a span is current (a record produced now belongs to its trace)."""
    return trace.get_current_span().get_span_context().is_valid


def current_trace_id() -> str | None:
    ids = trace.get_current_span().get_span_context()
    return format_trace_id(ids.trace_id) if ids.is_valid else None


@contextmanager
def traced(traceparent: str | None) -> Iterator[None]:
    """Make ``traceparent`` the current span for the duration of the block (None: no trace)."""
    ctx = _extract([(HEADER, traceparent)]) if traceparent else None
    token = context_api.attach(ctx or Context())  # an empty context: no current span
    try:
        yield
    finally:
        context_api.detach(token)


# -- spans -----------------------------------------------------------------------------
def _messaging(topic: str, operation: str) -> dict[str, Any]:
    """OpenTelemetry's messaging attributes (semantic conventions) of a Kafka span."""
    return {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.operation.type": operation,
    }


def producer_span(topic: str, start_new: bool) -> Span | None:
    """A started PRODUCER span for one record published now, or None (no trace).

    A child of the current span, or a new root when ``start_new``; without
    either, None. The caller ends it once the record is acknowledged.
    """
    if not (start_new or in_trace()):
        return None
    tracer = _tracer()
    attributes = _messaging(topic, "send") if tracer is _GLOBAL else None
    return tracer.start_span(f"send {topic}", kind=SpanKind.PRODUCER, attributes=attributes)


def end_producer_spans(spans: Sequence[Span | None], failures: Sequence[str | None]) -> None:
    """End each record's PRODUCER span once the publish is over, with its failure if any."""
    for span, failure in zip(spans, failures, strict=True):
        if span is None:
            continue
        if failure is not None:
            span.set_status(trace.StatusCode.ERROR, failure)
        span.end()


def outgoing(start_new: bool) -> OutHeaders | None:
    """The header of a record produced now: a child of the current span, a new root when
    ``start_new``, or none. (The span ends at once: for callers that do not wait.)"""
    span = producer_span("", start_new)
    if span is None:
        return None
    span.end()
    return headers_of(span)


def _consumer(
    processor: str, topic: str, partition: int, offset: int
) -> tuple[Tracer, str, dict[str, Any] | None]:
    tracer = _tracer()
    attributes = None
    if tracer is _GLOBAL:  # attributes only for spans that are recorded
        attributes = _messaging(topic, "process")
        attributes["messaging.destination.partition.id"] = str(partition)
        attributes["messaging.kafka.offset"] = offset
        attributes["kernel.processor"] = processor
    return tracer, f"process {topic}", attributes


def consuming(
    headers: Headers | None, processor: str, topic: str, partition: int, offset: int
) -> AbstractContextManager[Span | None]:
    """The CONSUMER span of processing one record, current inside the block.

    A child of the span the record carries; for a record without a valid
    ``traceparent``, no span (the block gets None) and nothing else is done.
    """
    parent = _extract(headers)
    if parent is None:
        return _NO_SPAN
    tracer, name, attributes = _consumer(processor, topic, partition, offset)
    return tracer.start_as_current_span(
        name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes
    )


def failed(span: Span, why: str) -> None:
    """Mark a record's span as failed (the record was dead-lettered)."""
    span.set_status(trace.StatusCode.ERROR, why)


def processed(
    headers: Headers | None,
    processor: str,
    topic: str,
    partition: int,
    offset: int,
    *,
    start_ns: int,
    error: str | None = None,
) -> None:
    """Record the CONSUMER span of a record processed from ``start_ns`` (its batch's
    start) until now, if the record carries a trace and spans are recorded.

    For runners that write a batch at once (the projectors): the span covers
    the batch's transaction; nothing runs inside it, so it is never current.
    """
    if not recording():
        return
    parent = _extract(headers)
    if parent is None:
        return
    tracer, name, attributes = _consumer(processor, topic, partition, offset)
    span = tracer.start_span(
        name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes, start_time=start_ns
    )
    if error is not None:
        span.set_status(trace.StatusCode.ERROR, error)
    span.end()
