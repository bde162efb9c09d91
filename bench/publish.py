"""SDK publish throughput vs a bare confluent-kafka producer loop, same run.

Both use the same producer configuration (idempotent, ``acks=all``, lz4,
linger 5 ms) against the same broker, 1 KB events, keyed by subject. The bare
loop produces pre-encoded bytes and flushes once: it is the floor the SDK's
validation, encoding and delivery bookkeeping are measured against.
Runs on the stack named by the environment (``kernel up`` if none runs).
"""

from __future__ import annotations

import base64
import io
import os
import uuid

from confluent_kafka import Producer as KafkaProducer
from fastavro import schemaless_writer

from bench._table import rate, table
from ops.bootstrap import bootstrap
from schemas.events import Event, new_event
from streams.kafka.producer import producer_config

N = 20_000


def _events(n: int) -> list[Event]:
    return [
        new_event(
            "kernelAction",
            f"agent-{i % 50}",
            f"acct-{i % 500}",
            {
                "action": "payments.transfer",
                "context": {"blob": base64.b64encode(os.urandom(690)).decode(), "i": i},
            },
        )
        for i in range(n)
    ]


def main() -> None:
    kernel = bootstrap()
    kernel.stack().up()
    kernel.names.prefix = f"bench{uuid.uuid4().hex[:8]}."
    kernel.topic_admin().ensure()
    events = _events(N)
    encoded = [(e.subject.encode(), kernel.codec.encode(e)) for e in events]
    size = sum(len(v) for _, v in encoded) / N
    topic = kernel.names.actions
    bare = KafkaProducer(kernel.kafka.config(producer_config(30)))
    sdk = kernel.producer()

    def bare_loop() -> int:
        for key, value in encoded:
            while True:
                try:
                    bare.produce(topic, value, key)
                    break
                except BufferError:
                    bare.poll(0.05)
        assert bare.flush(60) == 0
        return N

    schema = kernel.codec.schemas.newest("kernelAction")
    header = b"\xc3\x01" + schema.fingerprint

    def bare_loop_encoding() -> int:
        for event in events:
            buf = io.BytesIO()
            buf.write(header)
            schemaless_writer(buf, schema.parsed, event.to_avro())
            while True:
                try:
                    bare.produce(topic, buf.getvalue(), event.subject.encode())
                    break
                except BufferError:
                    bare.poll(0.05)
        assert bare.flush(60) == 0
        return N

    def sdk_batch() -> int:
        sdk.publish_batch(events)
        return N

    def sdk_single() -> int:
        for event in events[:500]:
            sdk.publish(event)
        return 500

    bare_loop()  # warm up connections and topic metadata
    results = []
    for _ in range(3):
        b, _ = rate(bare_loop, rounds=1)
        be, _ = rate(bare_loop_encoding, rounds=1)
        s, _ = rate(sdk_batch, rounds=1)
        results.append((b, be, s))
    b, be, s = (sorted(r[i] for r in results)[1] for i in range(3))
    one, _ = rate(sdk_single, rounds=3)
    table(
        f"Publish, {size:.0f}-byte events, acks=all, idempotent (median of 3 x {N:,})",
        ["producer", "events/s", "vs bare", "vs bare+encode"],
        [
            ["bare confluent-kafka loop, pre-encoded bytes", b, "1.00", "-"],
            ["bare loop + bare fastavro encode", be, f"{be / b:.2f}", "1.00"],
            ["SDK publish_batch (validated encode)", s, f"{s / b:.2f}", f"{s / be:.2f}"],
            ["SDK publish (one at a time)", one, f"{one / b:.3f}", f"{one / be:.3f}"],
        ],
    )


if __name__ == "__main__":
    main()
