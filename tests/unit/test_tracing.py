from __future__ import annotations

import logging

from hypothesis import given
from hypothesis import strategies as st

from ops.logging import JsonLinesFormatter
from streams import tracing


def test_child_keeps_the_trace_and_changes_the_span() -> None:
    root = tracing.new_root()
    child = tracing.child_of(root)
    assert tracing.trace_id(child) == tracing.trace_id(root)
    assert child != root
    assert child.split("-")[3] == root.split("-")[3]


@given(st.text(max_size=60))
def test_garbage_is_never_a_trace(text: str) -> None:
    if tracing.trace_id(text) is None:
        assert tracing.traceparent_of([("traceparent", text.encode())]) is None
        assert tracing.trace_id(tracing.child_of(text)) is not None  # a new root instead


def test_outgoing_propagates_or_starts_only_when_asked() -> None:
    assert tracing.outgoing(start_new=False) is None
    started = tracing.outgoing(start_new=True)
    assert started is not None
    parent = started[0][1]
    assert isinstance(parent, bytes)
    with tracing.traced(parent.decode()):
        ((key, value),) = tracing.outgoing(start_new=False) or []
        assert key == "traceparent"
        assert isinstance(value, bytes)
        assert tracing.trace_id(value.decode()) == tracing.trace_id(parent.decode())
    assert tracing.current() is None


def test_logs_carry_the_trace_of_the_record_being_processed() -> None:
    root = tracing.new_root()
    record = logging.makeLogRecord({"msg": "hello", "levelname": "INFO"})
    formatter = JsonLinesFormatter("unit")
    assert "traceId" not in formatter.format(record)
    with tracing.traced(root):
        assert tracing.trace_id(root) in formatter.format(record)


def _value(headers: list[tuple[str, str | bytes | None]] | None) -> str:
    """The one header's text: a ``traceparent``."""
    ((key, value),) = headers or []
    assert key == "traceparent"
    assert isinstance(value, bytes)
    return value.decode()


def test_a_record_without_a_trace_gets_no_span_and_no_work() -> None:
    nothing = tracing.consuming(None, "p", "t", 0, 0)
    assert nothing is tracing.consuming([("other", b"x")], "p", "t", 0, 0)  # one shared no-op
    with nothing as span:
        assert span is None
        assert tracing.current() is None
        assert tracing.headers_of(span) is None
    assert tracing.producer_span("t", start_new=False) is None


def test_processing_a_traced_record_continues_its_trace_with_a_span_of_its_own() -> None:
    root = tracing.new_root()
    with tracing.consuming([("traceparent", root.encode())], "p", "t", 0, 7) as span:
        assert span is not None
        assert tracing.current_trace_id() == tracing.trace_id(root)
        out = _value(tracing.headers_of(span))
        assert out == tracing.current()  # the outputs carry the processing span
        assert tracing.trace_id(out) == tracing.trace_id(root)
        assert out.split("-")[2] != root.split("-")[2]
        assert out.split("-")[3] == root.split("-")[3]
        # what it publishes meanwhile is a child of it (a PRODUCER span)
        sent = tracing.producer_span("u", start_new=False)
        assert sent is not None
        assert tracing.trace_id(_value(tracing.headers_of(sent))) == tracing.trace_id(root)
    assert tracing.current() is None


def test_a_started_trace_is_sampled_and_in_the_format_it_always_had() -> None:
    span = tracing.producer_span("t", start_new=True)
    version, trace, parent, flags = _value(tracing.headers_of(span)).split("-")
    assert (version, flags) == ("00", "01")
    assert len(trace) == 32 and len(parent) == 16
    assert int(trace, 16) and int(parent, 16)
    tracing.end_producer_spans([span, None], [None, None])


def test_only_a_configured_provider_records_spans() -> None:
    assert not tracing.recording()  # unit tests configure none: spans are only propagated
    tracing.processed(None, "p", "t", 0, 0, start_ns=0)  # nothing to do, nothing raised
