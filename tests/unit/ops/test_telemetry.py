"""The tracer provider of a process: none unless a collector is configured."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider

from ops import telemetry
from ops.config import Settings


def test_service_names() -> None:
    assert telemetry.service_name("run", ["signer"]) == "kernel-signer"
    assert telemetry.service_name("run", ["signer", "sentinel"]) == "kernel-signer+sentinel"
    assert telemetry.service_name("api") == "kernel-api"
    assert telemetry.service_name("publish") == "kernel-cli"


def test_no_collector_no_provider() -> None:
    assert telemetry.tracer_provider(Settings(state_dir=Path("/tmp")), "kernel-cli") is None


def test_a_collector_gets_the_spans_of_the_named_service_with_the_usual_flags() -> None:
    settings = Settings(state_dir=Path("/tmp"), otlp_endpoint="http://127.0.0.1:9/")
    provider = telemetry.tracer_provider(settings, "kernel-signer")
    assert isinstance(provider, TracerProvider)
    try:
        assert provider.resource.attributes["service.name"] == "kernel-signer"
        span = provider.get_tracer("t").start_span("s")  # never ended: nothing is exported
        assert int(span.get_span_context().trace_flags) == 1  # "-01", no level-2 random flag
    finally:
        provider.shutdown()


def test_exporting_turns_tracing_on_unless_it_is_turned_off() -> None:
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert not Settings.from_env({}).tracing
    assert Settings.from_env(endpoint).tracing
    assert Settings.from_env(endpoint).otlp_endpoint == "http://collector:4318"
    assert not Settings.from_env({**endpoint, "KERNEL_TRACING": "0"}).tracing
    assert Settings.from_env({"KERNEL_TRACING": "1"}).tracing
