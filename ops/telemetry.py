"""OpenTelemetry for one process: its tracer provider, set up here and nowhere else.

``kernel`` (:func:`ops.cli.main`) calls :func:`configure` once per process with
the process's service name -- ``kernel-<worker>[+<worker>...]`` for
``kernel run``, ``kernel-api`` for ``kernel api`` (and each of its worker
processes), ``kernel-cli`` for any other command -- and :func:`shutdown` on the
way out, which exports the spans still queued.

Only when OTEL_EXPORTER_OTLP_ENDPOINT names a collector: the spans
:mod:`streams.tracing` makes then go through a ``BatchSpanProcessor`` (a
background thread, never the record's path) to the OTLP exporter over HTTP
(protobuf), posting to ``<endpoint>/v1/traces`` as the OpenTelemetry
specification says. HTTP rather than gRPC: the same collectors accept both
(4318 and 4317), and the HTTP exporter needs only ``requests`` and
``protobuf``, where the gRPC one brings grpcio's large native wheels. The
exporter's own variables (OTEL_EXPORTER_OTLP_HEADERS, ..._TIMEOUT, ...)
apply as usual. A collector that is away never holds a record back (spans
queue, and past the queue's size are dropped), but it delays the end of a
process while the last spans are retried: by up to OTEL_EXPORTER_OTLP_TIMEOUT
(10 s by default; 7.5 s measured with the collector down).

Unset, nothing is configured and nothing of the SDK is even imported: records
are still stamped with ``traceparent``, and spans are not recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry import trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from ops.config import Settings

__all__ = ["configure", "flush", "service_name", "shutdown", "tracer_provider"]

_provider: TracerProvider | None = None


def service_name(command: str, workers: list[str] | None = None) -> str:
    """``service.name`` of the process running ``kernel COMMAND``."""
    if command == "run" and workers:
        return "kernel-" + "+".join(workers)
    if command == "api":
        return "kernel-api"
    return "kernel-cli"


def tracer_provider(settings: Settings, service: str) -> TracerProvider | None:
    """A provider exporting to the configured collector, or None when there is none."""
    if not settings.otlp_endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator  # noqa: PLC0415

    class SampledFlagOnly(RandomIdGenerator):
        """Random ids, without W3C level 2's "random" flag: a root's ``traceparent``
        ends in ``-01`` whether spans are exported or not, as it always has."""

        def is_trace_id_random(self) -> bool:
            return False

    resource = Resource.create(
        {"service.name": service, "service.instance.id": settings.instance_id}
    )
    provider = TracerProvider(resource=resource, id_generator=SampledFlagOnly())
    endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def configure(settings: Settings, service: str) -> None:
    """Install this process's tracer provider (once; a no-op when none is configured)."""
    global _provider  # noqa: PLW0603 (one provider per process, as OpenTelemetry's API has)
    if _provider is not None:
        return
    provider = tracer_provider(settings, service)
    if provider is None:
        return
    trace.set_tracer_provider(provider)
    _provider = provider


def flush(timeout_s: float) -> None:
    """Export what is queued, waiting at most ``timeout_s`` (before a hard exit)."""
    if _provider is not None:
        _provider.force_flush(int(timeout_s * 1000))


def shutdown() -> None:
    """Export what is queued and stop the exporter (at the end of the process)."""
    global _provider  # noqa: PLW0603
    if _provider is not None:
        _provider.shutdown()
        _provider = None
