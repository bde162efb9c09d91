"""Records for projector tests: chain links and policy checks, good and bad.

Bad records are built as :class:`Event` values directly and Avro-encoded
without the codec's checks (:func:`raw_encode`), the way a careless or hostile
producer writing straight to Kafka would put them on the log.
"""

from __future__ import annotations

import io
import time
import uuid
from dataclasses import replace
from typing import Any

from fastavro import schemaless_writer

from schemas.codec import SINGLE_OBJECT_MAGIC, EventCodec
from schemas.events import Event, new_event

# Each kind of bad chain link, and what Postgres (or the projection) says about it.
BAD_LINKS = ("uuid", "check", "nul_text", "nul_json", "duplicate", "malformed")
DUPLICATE_CHAIN = "dup/0"  # its seq 0 is in the table before the test writes


def link(chain: str, seq: int, bad: str | None = None) -> Event:
    """An auditRecord for (chain, seq); ``bad`` makes Postgres or the projection refuse it."""
    payload = new_event(
        "kernelAction", "svc", f"acct-{seq}", {"action": "pay", "context": {"n": seq}}
    ).to_json()
    good: dict[str, Any] = {
        "chain": chain,
        "seq": seq,
        "prevHash": "",
        "hash": f"{seq:064x}",
        "signature": "c2ln",
        "signerId": "test-signer",
        "sourceTopic": "t.actions",
        "sourcePartition": 0,
        "sourceOffset": seq,
        "payload": payload,
    }
    event = new_event("auditRecord", "test-signer", chain, good)
    body = dict(event.body)
    payload = body["payload"] = dict(payload)
    if bad == "uuid":
        payload["eventId"] = "not-a-uuid"  # audit_events.id is a uuid column
    elif bad == "check":
        body["seq"] = -1  # CHECK (seq >= 0)
    elif bad == "nul_text":
        body["signerId"] = "signer\x00x"  # text columns cannot hold NUL
    elif bad == "nul_json":
        payload["actor"] = "svc\x00x"  # jsonb refuses \u0000
    elif bad == "duplicate":
        body["chain"], body["seq"] = DUPLICATE_CHAIN, 0  # UNIQUE (chain, seq)
    elif bad == "malformed":
        del body["hash"]  # the projection itself raises (KeyError)
    elif bad is not None:
        raise ValueError(bad)
    return replace(event, body=body)


def policy_check(subject: str, *, request_id: str | None = None) -> Event:
    """A policyCheck as SentinelNet writes it (v2), for ``subject``."""
    event_id = str(uuid.uuid4())
    return Event(
        event_id=str(uuid.uuid4()),
        event_type="policyCheck",
        ts_ms=time.time_ns() // 1_000_000,
        actor="sentinelnet",
        subject=subject,
        body={
            "policyCheckId": str(uuid.uuid4()),
            "requestId": request_id,
            "decision": "allow",
            "allowed": True,
            "policyId": None,
            "policyVersion": None,
            "rationale": "no policy matched",
            "evidence": {"event": {"topic": "t.actions", "partition": 0, "offset": 1,
                                   "eventId": event_id}},
            "evaluations": [],
            "notMatched": [],
            "outranked": [],
            "simMode": False,
            "mode": "stream",
            "subjectEventId": event_id,
        },
        schema_version=2,
    )  # fmt: skip


def raw_encode(codec: EventCodec, event: Event) -> bytes:
    """Single-object Avro of ``event``, with none of the codec's checks."""
    schema = codec.schemas.get(event.event_type, event.schema_version)
    buf = io.BytesIO()
    buf.write(SINGLE_OBJECT_MAGIC + schema.fingerprint)
    schemaless_writer(buf, schema.parsed, event.to_avro())
    return buf.getvalue()
