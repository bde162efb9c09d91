"""No record can stop the TransactionalRunner (real Kafka): each failure is a dead letter."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from ops.bootstrap import Kernel
from schemas.codec import EventCodec
from schemas.errors import LogUnavailableError, ValidationError
from schemas.events import Event, new_event
from schemas.topics import TopicNames
from streams.kafka.transactional_runner import TransactionalRunner
from streams.processor import InputRecord, LogReader, OutputRecord
from tests.integration.core.test_producer import _actions, read_all


def _big(size: int) -> Event:
    # Strings within the input contract's 64 KiB each; random, so lz4 cannot shrink them.
    parts = [base64.b64encode(os.urandom(30_000)).decode() for _ in range(size // 40_000 + 1)]
    context = {f"b{i}": blob for i, blob in enumerate(parts)}
    return new_event("kernelAction", "svc", "big", {"action": "big", "context": context})


def _recurse(n: int) -> int:
    return _recurse(n + 1) + 1


@dataclass
class Hostile:
    """Copies each action; named actions fail the ways real code fails."""

    out_topic: str
    input_topics: Sequence[str]
    name: str = "hostile"

    def recover(self, assigned: Sequence[tuple[str, int]], reader: LogReader) -> int:
        return 0

    def step(self, state: int, record: InputRecord) -> tuple[int, list[OutputRecord]]:
        action = record.event.body["action"]
        copy = OutputRecord(self.out_topic, record.key or b"", record.event)
        if action == "recurse":
            _recurse(0)
        if action == "type":
            return state + "1", []  # type: ignore[operator]
        if action == "refuse":
            raise ValidationError("refused", field="body.action")
        if action == "huge":  # a derived record over max_record_bytes
            return state + 1, [OutputRecord(self.out_topic, b"k", _big(80_000))]
        if action == "second-huge":  # first output fine, second too large: neither
            return state + 1, [copy, OutputRecord(self.out_topic, b"k", _big(80_000))]
        if action == "second-nowhere":  # second output to a partition that does not exist
            return state + 1, [copy, replace(copy, partition=99)]
        return state + 1, [copy]


def test_no_record_stops_the_runner_and_outputs_are_all_or_nothing(kernel: Kernel) -> None:
    out = kernel.names.name("remediations")
    producer = kernel.producer()
    good = _actions(30, "a")
    bad = {
        name: replace(good[0], event_id=e.event_id, body={**good[0].body, "action": name})
        for name, e in zip(
            ["recurse", "type", "refuse", "huge", "second-huge", "second-nowhere"],
            _actions(6, "a"),
            strict=True,
        )
    }
    junk = bytes(range(256)) * 2600  # 665,600 bytes of non-Avro: over the copy limit
    producer.publish_batch(good[:10])
    producer.publish_batch(list(bad.values()))
    producer.publish_encoded([(kernel.names.actions, b"a", junk)])
    producer.publish_batch(good[10:])

    runner: TransactionalRunner[int] = TransactionalRunner(
        Hostile(out, [kernel.names.actions]),
        kafka=kernel.kafka,
        codec=kernel.codec,
        names=kernel.names,
        max_record_bytes=50_000,
    )
    assert runner.run_until_idle(idle_s=2, max_s=180) == 37
    runner.close()

    copied = [e.event_id for _, e, _ in read_all(kernel, out)]
    assert sorted(copied) == sorted(e.event_id for e in good)  # once each, none of the bad
    dead = {d.body["sourceOffset"]: d.body for _, d, _ in read_all(kernel, kernel.names.dlq)}
    assert len(dead) == 7
    by_type = sorted(b["errorType"] for b in dead.values())
    assert by_type == sorted(
        ["RecursionError", "TypeError", "ValidationError", "ValueError", "ValueError",
         "KafkaException", "SchemaError"]
    )  # fmt: skip
    reasons = " | ".join(b["reason"] for b in dead.values())
    assert reasons.count("derived record too large") == 2
    assert "RecursionError" in reasons and "TypeError" in reasons
    assert "the producer refused an output" in reasons
    junk_letter = next(b for b in dead.values() if b["sourceBytes"] == len(junk))
    assert junk_letter["copied"] is False and junk_letter["sourceValue"] is None
    assert junk_letter["sourceSha256"] == hashlib.sha256(junk).hexdigest()
    assert runner.stats.dead_by_reason == {"step": 3, "too_large": 2, "produce": 1, "decode": 1}
    assert runner.stats.aborts >= 1 and runner.stats.rewinds >= 1  # the redo path ran
    assert runner.stats.errors_by_type["RecursionError"] == 1


def test_a_record_the_broker_refuses_is_found_and_dead_lettered(kernel: Kernel) -> None:
    """The topic takes less than the runner allows: the refusal comes at commit, per batch."""
    out = kernel.names.name("small-records")
    admin = AdminClient({"bootstrap.servers": kernel.settings.kafka_bootstrap})
    topic = NewTopic(out, 1, 1, config={"max.message.bytes": "20000"})
    for future in admin.create_topics([topic]).values():
        future.result(30)
    good = _actions(12, "a")
    medium = replace(
        good[0], event_id=_actions(1)[0].event_id, body={**good[0].body, "action": "m"}
    )
    kernel.producer().publish_batch([*good[:6], medium, *good[6:]])

    @dataclass
    class Medium(Hostile):
        def step(self, state: int, record: InputRecord) -> tuple[int, list[OutputRecord]]:
            if record.event.body["action"] == "m":  # 30 kB: under 50 kB, over the topic's 20 kB
                return state + 1, [OutputRecord(self.out_topic, b"k", _big(30_000))]
            return super().step(state, record)

    runner: TransactionalRunner[int] = TransactionalRunner(
        Medium(out, [kernel.names.actions], name="medium"),
        kafka=kernel.kafka,
        codec=kernel.codec,
        names=kernel.names,
        max_record_bytes=50_000,
        batch_size=50,
    )
    assert runner.run_until_idle(idle_s=2, max_s=180) == 13
    runner.close()
    assert sorted(e.event_id for _, e, _ in read_all(kernel, out)) == sorted(
        e.event_id for e in good
    )
    dead = [d.body for _, d, _ in read_all(kernel, kernel.names.dlq)]
    assert [d["sourceOffset"] for d in dead] == [6]
    assert "the broker refused an output" in dead[0]["reason"]
    assert runner.stats.dead_by_reason == {"produce": 1}


def test_without_a_broker_start_fails_once_clearly_and_close_is_bounded() -> None:
    runner: TransactionalRunner[int] = TransactionalRunner(
        Hostile("out", ["in"]),
        kafka="127.0.0.1:9",  # nothing listens there
        codec=EventCodec(),
        names=TopicNames("nobroker."),
        instance_id="7",
        call_timeout_s=1,
        recovery_budget_s=3,
    )
    started = time.monotonic()
    with pytest.raises(LogUnavailableError, match=r"instance 7.*cannot init transactions"):
        runner.start()
    runner.close()  # after a failure: no flush, and nothing raised over the cause
    runner.close()
    assert time.monotonic() - started < 60


def test_sigterm_while_a_transactional_call_hangs_returns_at_once() -> None:
    """No broker: init_transactions hangs (5 s timeout, retried for 120 s); stop cuts it short."""
    runner: TransactionalRunner[int] = TransactionalRunner(
        Hostile("out", ["in"]),
        kafka="127.0.0.1:9",
        codec=EventCodec(),
        names=TopicNames("nobroker."),
    )
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop.is_set,))
    thread.start()
    time.sleep(1.0)
    stopped = time.monotonic()
    stop.set()
    thread.join(timeout=60)
    runner.close()
    assert not thread.is_alive()
    assert time.monotonic() - stopped < 15  # was: the call's full timeout, then close's flush
