"""Replay with full verification: ``AuditReplay`` links/s, in process vs pooled, same run.

Builds a signed chain topic of ``BENCH_N`` events (default 100,000) with the
chain signer and projects it (``bench.audit_pipeline.prepare``), then times
``kernel replay audit --verify-only``: read every chain partition, verify each
link (linkage, JCS + SHA-256, Ed25519, query copies), COPY into a shadow
schema, compare digests with live. ``BENCH_ROUNDS`` (default 3) rounds of
each, interleaved, so that load from other processes on the machine hits
both alike; the table shows medians and same-run ratios.

- in process: ``workers=0`` (the pool's checker runs in the replaying process);
- pooled: ``workers=BENCH_WORKERS`` (default ``os.cpu_count()``);
- floor: Ed25519 verification alone over the same links' digests and
  signatures, on 1 core and on ``BENCH_WORKERS`` processes (the work no
  verified replay can skip, and what the cores can give it right now).
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench._table import table
from bench.audit_pipeline import drop_database, pipeline, prepare
from ops.bootstrap import Kernel
from projections.audit import AuditProjection
from replay.audit_replay import AuditReplay, ReplayReport
from streams.chain.keys import load_signers_file
from streams.chain.links import link_digest
from streams.chain.signing import Verifier, unb64
from streams.kafka.log_reader import KafkaLogReader

Pairs = list[tuple[bytes, bytes]]


def _replay(kernel: Kernel, signers: Path, workers: int) -> ReplayReport:
    reader = KafkaLogReader(kernel.settings.kafka_bootstrap, kernel.codec)
    try:
        report = AuditReplay(
            reader=reader,
            database_url=kernel.settings.database_url,
            projection=AuditProjection(kernel.names.chain, kernel.names.checkpoints),
            verifiers=load_signers_file(signers),
            kafka=kernel.kafka,
            workers=workers,
        ).run(verify_only=True)
    finally:
        reader.close()
    assert report.identical, report.to_json()
    return report


def _signed_digests(kernel: Kernel) -> Pairs:
    """(digest, signature) of every link of the chain topic."""
    reader = KafkaLogReader(kernel.settings.kafka_bootstrap, kernel.codec)
    try:
        topic = kernel.names.chain
        bodies = [r.event.body for p in reader.partitions(topic) for r in reader.iter(topic, p, 0)]
    finally:
        reader.close()
    return [(link_digest(b["payload"], b["prevHash"]), unb64(b["signature"])) for b in bodies]


def _verify_all(key: bytes, pairs: Pairs) -> int:
    verifier = Verifier(key)
    return sum(verifier.verify(d, s) for d, s in pairs)


def _floor(pool: ProcessPoolExecutor, workers: int, key: bytes, pairs: Pairs) -> float:
    """Ed25519 verifications/s of ``pairs`` split over ``workers`` processes."""
    size = -(-len(pairs) // workers)
    t0 = time.perf_counter()
    parts = [pairs[i : i + size] for i in range(0, len(pairs), size)]
    ok = sum(pool.map(_verify_all, [key] * len(parts), parts))
    elapsed = time.perf_counter() - t0
    assert ok == len(pairs)
    return len(pairs) / elapsed


def main() -> None:
    n = int(os.environ.get("BENCH_N", "100000"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    workers = int(os.environ.get("BENCH_WORKERS", str(os.cpu_count() or 1)))
    with tempfile.TemporaryDirectory() as tmp:
        kernel, signers = prepare(n, Path(tmp))
        try:
            pipeline(kernel)
            (key,) = [v.public_key for v in load_signers_file(signers).values()]
            pairs = _signed_digests(kernel)[:40_000]
            context = multiprocessing.get_context("forkserver")
            results: dict[str, list[float]] = {"in": [], "pool": [], "f1": [], "fn": []}
            steps: dict[str, dict[str, list[float]]] = {"in": {}, "pool": {}}
            records = 0
            with ProcessPoolExecutor(workers, mp_context=context) as floor_pool:
                _floor(floor_pool, workers, key, pairs[:2000])  # start the processes
                for _ in range(rounds):
                    for name, w in (("in", 0), ("pool", workers)):
                        report = _replay(kernel, signers, w)
                        records = report.records
                        results[name].append(records / report.seconds)
                        for step, seconds in [*report.steps.items(), ("total", report.seconds)]:
                            steps[name].setdefault(step, []).append(seconds)
                    results["f1"].append(_floor(floor_pool, 1, key, pairs))
                    results["fn"].append(_floor(floor_pool, workers, key, pairs))
        finally:
            drop_database(kernel)
    med = {k: statistics.median(v) for k, v in results.items()}
    spread = {k: f"{min(v):,.0f}-{max(v):,.0f}" for k, v in results.items()}
    rows = [
        ["floor: Ed25519 verify only, 1 process", "f1"],
        [f"floor: Ed25519 verify only, {workers} processes", "fn"],
        ["replay --verify-only, in process (workers=0)", "in"],
        [f"replay --verify-only, pooled (workers={workers})", "pool"],
    ]
    table(
        f"replay audit --verify-only, {records:,} links, {rounds} rounds (median), same run",
        ["path", "links/s", "range", "vs in-process", f"of {workers}-process floor"],
        [
            [label, med[k], spread[k], f"{med[k] / med['in']:.2f}x", f"{med[k] / med['fn']:.0%}"]
            for label, k in rows
        ],
    )
    table(
        "where the time goes (median seconds)",
        ["step", "in process", f"pooled ({workers})"],
        [
            [step, statistics.median(steps["in"][step]), statistics.median(steps["pool"][step])]
            for step in steps["in"]
        ],
    )


if __name__ == "__main__":
    main()
