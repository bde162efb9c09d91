"""Dead letters: a record that cannot be processed is published, never dropped.

The dead-letter event names the processor, the reason, the error type and the
source topic/partition/offset. It carries the original key and value bytes so
an operator can replay the record once fixed -- when they fit: a dead letter
must itself always encode and fit on the log (it is what keeps a worker going
past a record that broke it), so a value above ``max_copy_bytes`` is not
copied but referenced by its size and SHA-256 beside its log position
(``copied`` false, ``sourceValue`` null). The same goes for a key above
:data:`MAX_KEY_COPY_BYTES`.

The reason comes from exception text, which may hold anything the record did
(a NUL, a lone surrogate from a decoder, megabytes of repr); it is made
printable UTF-8 and cut to :data:`MAX_REASON_CHARS`.
"""

from __future__ import annotations

import hashlib

from schemas.events import Event, new_event

__all__ = ["MAX_COPY_BYTES", "MAX_KEY_COPY_BYTES", "MAX_REASON_CHARS", "dead_letter", "safe_text"]

MAX_COPY_BYTES = 512 * 1024
MAX_KEY_COPY_BYTES = 4096
MAX_REASON_CHARS = 4000
_NAME_CHARS = 200


def safe_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` chars, as valid UTF-8 with no NUL or other C0 controls."""
    cut = text[:limit]
    if cut.isprintable():  # the common case: one C-level scan, no copy
        return cut
    cleaned = cut.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(c if c.isprintable() or c in "\t\n" else f"\\x{ord(c):02x}" for c in cleaned)[
        :limit
    ]


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
    max_copy_bytes: int = MAX_COPY_BYTES,
) -> Event:
    size = len(value) if value is not None else 0
    copied = value is not None and size <= max_copy_bytes
    topic_text = safe_text(topic, _NAME_CHARS)
    processor_text = safe_text(processor, _NAME_CHARS)
    return new_event(
        "deadLetter",
        actor=processor_text,
        subject=f"{topic_text}/{partition}",
        ts_ms=ts_ms,
        body={
            "reason": safe_text(reason, MAX_REASON_CHARS),
            "errorType": safe_text(error_type, _NAME_CHARS),
            "processor": processor_text,
            "sourceTopic": topic_text,
            "sourcePartition": partition,
            "sourceOffset": offset,
            "sourceKey": key if key is not None and len(key) <= MAX_KEY_COPY_BYTES else None,
            "sourceValue": value if copied else None,
            "sourceBytes": size,
            "sourceSha256": hashlib.sha256(value).hexdigest() if value is not None else "",
            "copied": copied,
        },
    )
