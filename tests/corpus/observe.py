"""What Kernel did with the corpus: the dead-letter topic and the projections, read back.

:class:`DeadLetters` follows the dead-letter topic (read_committed, from the
beginning) and indexes each dead letter by the source position it names.
:class:`Projections` counts ``audit_events`` rows by source position and by
event id, and ``policy_checks`` rows by the action position they decided and
by check id -- the "exactly once" of the end checks.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tests.corpus.raw import decode_wire

__all__ = ["DeadLetter", "DeadLetters", "Position", "Projections", "Snapshot"]

Position = tuple[str, int, int]


@dataclass(frozen=True)
class DeadLetter:
    processor: str
    reason: str
    error_type: str


class DeadLetters:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "corpus-dlq-reader",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.message.max.bytes": 16_000_000,
            }
        )
        self._consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        self.by_source: dict[Position, list[DeadLetter]] = defaultdict(list)
        self.undecodable: list[str] = []  # a dead letter must always decode

    def poll(self) -> None:
        while True:
            msgs = self._consumer.consume(500, timeout=0.2)
            if not msgs:
                return
            for msg in msgs:
                if msg.error():
                    continue
                try:  # read without the codec's checks: only the source position matters here
                    body = decode_wire(msg.value())["body"]
                    if not isinstance(body.get("reason"), str):
                        raise TypeError("not a dead letter")
                except Exception as exc:
                    self.undecodable.append(f"offset {msg.offset()}: {exc}")
                    continue
                pos = (body["sourceTopic"], body["sourcePartition"], body["sourceOffset"])
                self.by_source[pos].append(
                    DeadLetter(body["processor"], body["reason"], body["errorType"])
                )

    def close(self) -> None:
        self._consumer.close()


@dataclass(frozen=True)
class Snapshot:
    audit_by_source: Counter[Position]
    audit_by_id: Counter[str]
    checks_by_action: Counter[Position]
    checks_by_subject_event: Counter[str]
    checks_by_id: dict[str, tuple[str, int]]  # policy_check_id -> (event_id, rows)
    chains: Counter[str]  # rows per chain name, in audit_events and audit_checkpoints


class Projections:
    def __init__(self, url: str) -> None:
        self.url = url

    def snapshot(self) -> Snapshot:
        with psycopg.connect(self.url) as conn:
            audit = conn.execute(
                "SELECT source_topic, source_partition, source_offset, id::text FROM audit_events"
            ).fetchall()
            checks = conn.execute(
                "SELECT action_topic, action_partition, action_offset, subject_event_id,"
                " policy_check_id::text, event_id::text FROM policy_checks"
            ).fetchall()
            chains = conn.execute(
                "SELECT chain FROM audit_events UNION ALL SELECT chain FROM audit_checkpoints"
            ).fetchall()
        by_id: dict[str, tuple[str, int]] = {}
        for *_, check_id, event_id in checks:
            by_id[check_id] = (event_id, by_id.get(check_id, ("", 0))[1] + 1)
        return Snapshot(
            audit_by_source=Counter((t, p, o) for t, p, o, _ in audit),
            audit_by_id=Counter(i for *_, i in audit),
            checks_by_action=Counter((t, p, o) for t, p, o, *_ in checks if t is not None),
            checks_by_subject_event=Counter(s for _, _, _, s, *_ in checks if s is not None),
            checks_by_id=by_id,
            chains=Counter(c for (c,) in chains),
        )
