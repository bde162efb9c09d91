"""Scale-out of the TransactionalRunner: instances split the group, broadcast reaches all."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from confluent_kafka.admin import AdminClient, NewTopic

from ops.bootstrap import Kernel
from schemas.events import Event
from streams.kafka.transactional_runner import TransactionalRunner
from streams.processor import InputRecord, LogReader, OutputRecord
from tests.integration.core.test_producer import _actions, read_all


@dataclass
class Tally:
    """Copies actions; absorbs every broadcast record into its state (a tuple of ids)."""

    out_topic: str
    input_topics: Sequence[str]
    broadcast_topics: Sequence[str]
    name: str = "tally"
    assigned: list[tuple[str, int]] = field(default_factory=list)
    states: list[tuple[str, ...]] = field(default_factory=list)

    def recover(self, assigned: Sequence[tuple[str, int]], reader: LogReader) -> tuple[str, ...]:
        self.assigned = list(assigned)
        return ()

    def absorb(self, state: tuple[str, ...], record: InputRecord) -> tuple[str, ...]:
        return (*state, record.event.event_id)

    def step(
        self, state: tuple[str, ...], record: InputRecord
    ) -> tuple[tuple[str, ...], list[OutputRecord]]:
        self.states.append(state)
        return state, [OutputRecord(self.out_topic, record.key or b"", record.event)]


def _wait(what: str, cond: object, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not within {timeout_s}s: {what}"
        time.sleep(0.2)


def test_two_instances_split_the_partitions_and_both_see_every_broadcast(kernel: Kernel) -> None:
    bcast = kernel.names.name("bcast")
    admin = AdminClient({"bootstrap.servers": kernel.settings.kafka_bootstrap})
    for future in admin.create_topics([NewTopic(bcast, 2, 1)]).values():
        future.result(30)
    out = kernel.names.name("remediations")
    producer = kernel.producer()
    early = _actions(3, "p") + _actions(2, "q")
    producer.publish_batch(early, topic=bcast)

    boot, names = kernel.settings.kafka_bootstrap, kernel.names
    procs = [Tally(out, [kernel.names.actions], [bcast]) for _ in range(2)]
    runners = [
        TransactionalRunner(p, kafka=boot, codec=kernel.codec, names=names, instance_id=i)
        for i, p in zip(["0", "1"], procs, strict=True)
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=r.run, args=(stop.is_set,)) for r in runners]
    for t in threads:
        t.start()
    try:
        subjects = [f"s{i}" for i in range(12)]
        actions = [e for s in subjects for e in _actions(4, s)]
        producer.publish_batch(actions)
        late = _actions(4, "r")
        producer.publish_batch(late, topic=bcast)
        everything = {e.event_id for e in early + late}

        def split() -> bool:
            mine = [set(p.assigned) for p in procs]
            return all(mine) and not (mine[0] & mine[1]) and len(mine[0] | mine[1]) == 3

        _wait("both instances hold partitions", split)
        _wait("every action copied", lambda: len(read_all(kernel, out)) >= len(actions))
        # Both see every broadcast record, the late ones too (drained before a batch):
        # keep actions coming on every partition until both states show them all.
        more: list[Event] = []

        def both_saw_everything() -> bool:
            batch = [e for i in range(12) for e in _actions(1, f"t{i}")]
            producer.publish_batch(batch)
            more.extend(batch)
            time.sleep(0.5)
            return all(p.states and set(p.states[-1]) == everything for p in procs)

        _wait("both states hold every broadcast record", both_saw_everything)
        _wait("every action copied", lambda: len(read_all(kernel, out)) >= len(actions + more))
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        for r in runners:
            r.close()
    copied = sorted(e.event_id for _, e, _ in read_all(kernel, out))
    assert copied == sorted(e.event_id for e in actions + more)  # exactly once, across both
    assert all(len(p.states[-1]) == len(everything) for p in procs)  # folded once, no repeats
