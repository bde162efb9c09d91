"""Replay with full verification: ``AuditReplay`` events/s, same run as a bare floor.

Builds a signed chain topic of ``BENCH_N`` events (default 100,000) with the
chain signer and projects it (``bench.audit_pipeline.prepare``), then times
``kernel replay audit --verify-only``'s core: read every chain partition,
verify each link (linkage, JCS + SHA-256, Ed25519), COPY into a shadow schema,
compare digests with live. The floor is Ed25519 verification alone over the
same digests, one core (the work no verified replay can skip).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench._table import table
from bench.audit_pipeline import drop_database, pipeline, prepare
from projections.audit import AuditProjection
from replay.audit_replay import AuditReplay
from streams.chain.keys import load_signer, load_signers_file
from streams.kafka.log_reader import KafkaLogReader


def main() -> None:
    n = int(os.environ.get("BENCH_N", "100000"))
    with tempfile.TemporaryDirectory() as tmp:
        kernel, signers = prepare(n, Path(tmp))
        try:
            pipeline(kernel)
            reader = KafkaLogReader(kernel.settings.kafka_bootstrap, kernel.codec)
            try:
                replay = AuditReplay(
                    reader=reader,
                    database_url=kernel.settings.database_url,
                    projection=AuditProjection(kernel.names.chain, kernel.names.checkpoints),
                    verifiers=load_signers_file(signers),
                    bootstrap=kernel.settings.kafka_bootstrap,
                )
                report = replay.run(verify_only=True)
            finally:
                reader.close()
            assert report.identical, report.to_json()
            signer = load_signer(kernel.settings.signing_key)  # type: ignore[arg-type]
            verifier = load_signers_file(signers)[signer.signer_id]
            digest = b"\x01" * 32
            sig = signer.sign(digest)
            m = min(n, 20_000)
            t0 = time.perf_counter()
            for _ in range(m):
                verifier.verify(digest, sig)
            floor_rate = m / (time.perf_counter() - t0)
        finally:
            drop_database(kernel)
    rate = report.records / report.seconds
    table(
        f"replay audit --verify-only, {report.records:,} links, same run",
        ["path", "seconds", "events/s", "of floor"],
        [
            ["floor: Ed25519 verify only, 1 core", m / floor_rate, floor_rate, "100%"],
            ["replay: read+verify+COPY+compare", report.seconds, rate, f"{rate / floor_rate:.0%}"],
        ],
    )


if __name__ == "__main__":
    main()
