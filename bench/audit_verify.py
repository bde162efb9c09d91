"""``kernel audit-verify`` over many rows: seconds and peak memory.

Fills a fresh database with ``BENCH_ROWS`` (default 200,000; 1,000,000 for the
issue's figure, ~1 min of signing) valid signed rows over 6 chains, built with
the pure :class:`ChainStep` and written with COPY, then runs ``kernel
audit-verify`` as a subprocess: wall time and its peak RSS (ru_maxrss of the
child). Streaming verification keeps memory flat in the row count; time is
linear, so 1M is 5x the 200k default.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import psycopg

from bench._table import table
from ops.bootstrap import bootstrap
from projections.migrate import migrate
from schemas.positions import LogPosition
from streams.chain.keys import signers_document
from streams.chain.links import ChainHead, ChainStep
from streams.chain.signing import LocalEd25519Signer

COLUMNS = (
    "id, chain, seq, event_type, payload, prev_hash, hash, signature, signer_id, ts, "
    "metadata, source_topic, source_partition, source_offset"
)


def fill(url: str, rows: int, chains: int = 6) -> LocalEd25519Signer:
    signer = LocalEd25519Signer(hashlib.sha256(b"bench").digest(), "bench-signer")
    step = ChainStep(signer)
    heads: dict[int, ChainHead | None] = dict.fromkeys(range(chains))
    with (
        psycopg.connect(url) as conn,
        conn.cursor() as cur,
        cur.copy(f"COPY audit_events ({COLUMNS}) FROM STDIN") as copy,
    ):
        for i in range(rows):
            part = i % chains
            payload = {
                "eventId": str(uuid.UUID(int=i)),
                "eventType": "kernelAction",
                "ts": "2026-01-31T12:00:00.000Z",
                "actor": f"agent-{i % 50}",
                "subject": f"acct-{i % 500}",
                "schemaVersion": 1,
                "metadata": {},
                "body": {"action": "payments.transfer", "context": {"i": i, "m": "x" * 200}},
            }
            head, b = step(heads[part], payload, LogPosition("bench", part, i))
            heads[part] = head
            copy.write_row(
                (
                    payload["eventId"], b["chain"], b["seq"], "kernelAction",
                    orjson.dumps(payload).decode(), b["prevHash"], b["hash"],
                    b["signature"], b["signerId"], payload["ts"], "{}",
                    "bench", part, i,
                )
            )  # fmt: skip
    return signer


def main() -> None:
    rows = int(os.environ.get("BENCH_ROWS", "200000"))
    settings = bootstrap().settings
    db = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db}")
    url = settings.database_url.rsplit("/", 1)[0] + f"/{db}"
    try:
        migrate(url)
        t0 = time.perf_counter()
        signer = fill(url, rows)
        fill_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            signers = Path(tmp) / "signers.json"
            signers.write_text(
                json.dumps(signers_document([(signer.signer_id, signer.public_key)]))
            )
            exe = str(Path(sys.executable).with_name("kernel"))
            t0 = time.perf_counter()
            done = subprocess.run(
                [exe, "audit-verify", "--database-url", url, "--signers", str(signers)],
                capture_output=True,
                text=True,
                check=False,
            )
            verify_s = time.perf_counter() - t0
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        assert done.returncode == 0, done.stderr
    finally:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    table(
        f"kernel audit-verify, {rows:,} rows in 6 chains",
        ["step", "seconds", "rows/s", "peak RSS MiB"],
        [
            ["fill (sign + COPY, not audit-verify)", fill_s, rows / fill_s, ""],
            ["audit-verify (subprocess)", verify_s, rows / verify_s, f"{peak_mib:.0f}"],
            ["extrapolated to 1,000,000 rows", verify_s * 1e6 / rows, rows / verify_s, ""],
        ],
    )


if __name__ == "__main__":
    main()
