"""Avro encode/decode of a typical kernel action: our codec vs bare fastavro.

The bare baseline writes and reads the same datum with fastavro's
``schemaless_writer``/``schemaless_reader`` and the same parsed schema, without
framing, validation or the Event model; the ratio is what the codec costs.
"""

from __future__ import annotations

import io

from fastavro import schemaless_reader, schemaless_writer

from bench._table import rate, table
from schemas.catalog import catalog
from schemas.codec import EventCodec
from schemas.events import new_event

N = 20_000


def main() -> None:
    codec = EventCodec()
    event = new_event(
        "kernelAction",
        "agent-billing",
        "acct-1001",
        {
            "action": "payments.transfer",
            "resource": "acct-2002",
            "requestId": "r-1",
            "context": {
                "amount": 120,
                "currency": "EUR",
                "country": "DE",
                "risk": 0.12,
                "tags": ["batch", "api"],
                "mfa": True,
            },
        },
    )
    schema = catalog().newest("kernelAction").parsed
    datum = event.to_avro()
    data = codec.encode(event)
    body = data[10:]

    def bare_encode() -> int:
        for _ in range(N):
            buf = io.BytesIO()
            schemaless_writer(buf, schema, datum)
        return N

    def bare_decode() -> int:
        for _ in range(N):
            schemaless_reader(io.BytesIO(body), schema, schema)
        return N

    def our_encode() -> int:
        for _ in range(N):
            codec.encode(event)
        return N

    def our_decode() -> int:
        for _ in range(N):
            codec.decode(data)
        return N

    be, _ = rate(bare_encode)
    oe, _ = rate(our_encode)
    bd, _ = rate(bare_decode)
    od, _ = rate(our_decode)
    table(
        f"Avro codec, kernel action of {len(data)} bytes (median of 5 rounds x {N:,})",
        ["operation", "bare fastavro rec/s", "kernel codec rec/s", "ratio"],
        [["encode", be, oe, f"{oe / be:.2f}"], ["decode", bd, od, f"{od / bd:.2f}"]],
    )


if __name__ == "__main__":
    main()
