"""Dead letters: a record that cannot be processed is published, never dropped.

The dead-letter event names the processor, the reason, the error type and the
source topic/partition/offset, and carries the original key and value bytes so
an operator can replay it once fixed.
"""

from __future__ import annotations

from schemas.events import Event, new_event

__all__ = ["dead_letter"]


def dead_letter(
    *,
    processor: str,
    reason: str,
    error_type: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    ts_ms: int | None = None,
) -> Event:
    return new_event(
        "deadLetter",
        actor=processor,
        subject=f"{topic}/{partition}",
        ts_ms=ts_ms,
        body={
            "reason": reason[:4000],
            "errorType": error_type,
            "processor": processor,
            "sourceTopic": topic,
            "sourcePartition": partition,
            "sourceOffset": offset,
            "sourceKey": key,
            "sourceValue": value,
        },
    )
