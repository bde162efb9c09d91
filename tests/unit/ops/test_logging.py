"""Structured JSON-lines logging carries the service and the ids in context."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from ops.logging import JsonLinesFormatter, configure, current_context, log_context


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
