"""Structured JSON-lines logging carries the service and the ids in context."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from ops.logging import JsonLinesFormatter, RepeatFilter, configure, current_context, log_context


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    configure("chain-signer", stream=out)
    yield out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def _read(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_every_line_is_json_with_service_and_ids(lines: io.StringIO) -> None:
    log = logging.getLogger("streams.chain")
    log.info("before")
    with log_context(event_id="e-1", trace_id="t-9"):
        log.info("signed %d records", 3, extra={"partition": 2})
        with log_context(policy_check_id="pc-7"):
            log.warning("nested")
    log.info("after")
    before, signed, nested, after = _read(lines)
    assert before["service"] == "chain-signer"
    assert "eventId" not in before
    assert signed["msg"] == "signed 3 records"
    assert signed["eventId"] == "e-1"
    assert signed["traceId"] == "t-9"
    assert signed["partition"] == 2
    assert signed["level"] == "info"
    assert nested["policyCheckId"] == "pc-7"
    assert nested["eventId"] == "e-1"
    assert "eventId" not in after
    assert current_context() == {}


def test_exceptions_and_odd_values_are_kept(lines: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("x").exception("failed", extra={"obj": object()})
    (line,) = _read(lines)
    assert "ValueError: boom" in str(line["exc"])
    assert str(line["obj"]).startswith("<object object")


def test_formatter_is_usable_alone() -> None:
    record = logging.makeLogRecord({"msg": "hi", "levelname": "INFO", "name": "n"})
    doc = json.loads(JsonLinesFormatter("api").format(record))
    assert (doc["service"], doc["msg"]) == ("api", "hi")


def test_librdkafka_repeats_are_held_back_and_counted_on_the_next_line() -> None:
    now = [0.0]
    f = RepeatFilter(window_s=10.0, clock=lambda: now[0])

    def rec(msg: str) -> logging.LogRecord:
        return logging.makeLogRecord({"msg": msg, "name": "kernel.librdkafka"})

    refused = "FAIL [rdkafka#consumer-{}] Connect failed (after {}ms in state CONNECT)"
    assert f.filter(rec(refused.format(1, 0)))
    assert not f.filter(rec(refused.format(1, 12)))  # same kind: digits do not count
    assert not f.filter(rec(refused.format(3, 0)))
    assert f.filter(rec("GETPID another message"))  # another kind goes through
    now[0] = 10.5
    again = rec(refused.format(1, 0))
    assert f.filter(again) and again.repeated == 2
    fresh = rec(refused.format(1, 0))
    now[0] = 21.0
    assert f.filter(fresh) and not hasattr(fresh, "repeated")
