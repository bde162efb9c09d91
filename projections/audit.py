"""The ``audit_events`` and ``audit_checkpoints`` projections of the chain topics.

One row per chain link, written with COPY inside the projector's batch
transaction (with the checkpoint), so the table is exactly the committed
chain: nothing twice, nothing skipped. ``id``, ``event_type``, ``ts`` and
``metadata`` are copies of payload fields for querying; ``audit-verify``
trusts none of them and recomputes every hash from ``payload``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg

from streams.processor import InputRecord

__all__ = ["EVENT_COLUMNS", "AuditProjection", "event_row"]

EVENT_COLUMNS = (
    "id, chain, seq, event_type, payload, prev_hash, hash, signature, signer_id, ts, "
    "metadata, source_topic, source_partition, source_offset"
)
_CHECKPOINT_COLUMNS = "chain, size, root_hash, head_hash, signer_id, note"


@dataclass
class AuditProjection:
    chain_topic: str
    checkpoint_topic: str
    name: str = "audit"

    @property
    def topics(self) -> Sequence[str]:
        return [self.chain_topic, self.checkpoint_topic]

    def write(self, cur: psycopg.Cursor[tuple[object, ...]], batch: Sequence[InputRecord]) -> None:
        links = [r for r in batch if r.event.event_type == "auditRecord"]
        checkpoints = [r for r in batch if r.event.event_type == "chainCheckpoint"]
        if links:
            with cur.copy(f"COPY audit_events ({EVENT_COLUMNS}) FROM STDIN") as copy:
                for r in links:
                    copy.write_row(event_row(r.event.body))
        if checkpoints:
            cur.executemany(
                f"INSERT INTO audit_checkpoints ({_CHECKPOINT_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (chain, size) DO NOTHING",
                [
                    (b["chain"], b["size"], b["rootHash"], b["headHash"], b["signerId"], b["note"])
                    for b in (r.event.body for r in checkpoints)
                ],
            )


def event_row(body: Mapping[str, Any]) -> tuple[Any, ...]:
    """The ``audit_events`` row of an auditRecord body, in :data:`EVENT_COLUMNS` order."""
    p = body["payload"]
    return (
        p["eventId"],
        body["chain"],
        body["seq"],
        p["eventType"],
        orjson.dumps(p).decode(),
        body["prevHash"],
        body["hash"],
        body["signature"],
        body["signerId"],
        p["ts"],
        orjson.dumps(p.get("metadata", {})).decode(),
        body["sourceTopic"],
        body["sourcePartition"],
        body["sourceOffset"],
    )
