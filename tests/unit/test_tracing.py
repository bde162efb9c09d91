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
