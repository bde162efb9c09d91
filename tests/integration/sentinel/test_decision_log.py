"""The sync check's decision log on real Kafka: one record or several, each acknowledged."""

from __future__ import annotations

import asyncio

from ops.bootstrap import Kernel
from schemas.events import new_event
from schemas.positions import LogPosition
from streams.sentinel.kafka_decision_log import KafkaDecisionLog
from tests.integration.core.test_producer import read_all


def test_one_and_several_records_are_acknowledged_with_their_positions(kernel: Kernel) -> None:
    topic = kernel.names.actions
    events = [
        new_event("kernelAction", actor="a", subject="acct-1", body={"action": f"op-{i}"})
        for i in range(3)
    ]

    async def scenario() -> tuple[list[LogPosition], list[LogPosition]]:
        log = KafkaDecisionLog(kernel.settings.kafka_bootstrap, kernel.codec, topic, 10.0)
        try:
            return await log.publish(events[:1]), await log.publish(events[1:])
        finally:
            log.close()

    one, two = asyncio.run(scenario())
    assert len(one) == 1 and len(two) == 2
    # one subject, one partition: the later records follow, in order
    assert {p.partition for p in one + two} == {one[0].partition}
    assert [p.offset for p in one + two] == [one[0].offset + i for i in range(3)]
    on_log = [(key, e.event_id, part) for key, e, part in read_all(kernel, topic)]
    assert on_log == [(b"acct-1", e.event_id, one[0].partition) for e in events]
