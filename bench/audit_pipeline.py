"""End-to-end audit pipeline: N published events -> signed -> projected in Postgres.

Measured on the stack named by the environment (for the test stack:
``KERNEL_STATE_DIR=/var/lib/kernel-test KERNEL_KAFKA_PORT=29092 KERNEL_PG_PORT=25432``),
in a fresh topic prefix and database. N (``BENCH_N``, default 100,000) events of
~400 bytes are published first; then, timed:

- pipeline: ``Kernel.chain_signer()`` (exactly-once, one Kafka transaction per
  batch) to idle, then ``Kernel.audit_projector()`` (COPY + checkpoint per
  Postgres transaction) to idle, in this process, one after the other (so the
  figure is conservative: deployed, they run concurrently on the two cores).
  The idle wait that ends each run is subtracted.
- floor: the same records through the bare minimum: confluent-kafka consume,
  JCS (``rfc8785``), SHA-256, Ed25519 sign, COPY into a plain table.

Also the signer's RSS (``kernel run signer`` subprocess, /proc VmHWM) after
``BENCH_RSS_SIZES`` events (default "20000,100000"; "100000,1000000" for the
issue's figure, minutes of publishing).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import psycopg
import rfc8785
from confluent_kafka import Consumer, TopicPartition

from bench._table import table
from ops.bootstrap import Kernel, bootstrap
from projections.migrate import migrate
from schemas.events import Event, new_event
from streams.chain.keys import generate_key, load_signer, signers_document

IDLE_S = 0.5


def events(n: int) -> list[Event]:
    return [
        new_event(
            "kernelAction",
            f"agent-{i % 50}",
            f"acct-{i % 500}",
            {"action": "payments.transfer", "context": {"amount": i, "memo": "x" * 270}},
        )
        for i in range(n)
    ]


def prepare(n: int, workdir: Path) -> tuple[Kernel, Path]:
    """A kernel with fresh topics, database and key; ``n`` events published."""
    base = bootstrap()
    base.stack().up()
    db = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base.settings.database_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db}")
    url = base.settings.database_url.rsplit("/", 1)[0] + f"/{db}"
    key = generate_key(workdir / "keys", "bench-signer")
    kernel = Kernel(
        replace(
            base.settings,
            topic_prefix=f"bench{uuid.uuid4().hex[:8]}.",
            postgres_url=url,
            signing_key=key,
            signer_id="bench-signer",
            state_dir=workdir,
        )
    )
    kernel.topic_admin().ensure()
    migrate(url)
    signer = load_signer(key)
    signers = workdir / "signers.json"
    import json  # noqa: PLC0415

    signers.write_text(json.dumps(signers_document([(signer.signer_id, signer.public_key)])))
    producer = kernel.producer()
    for start in range(0, n, 20_000):
        producer.publish_batch(events(min(20_000, n - start)))
    return kernel, signers


def drop_database(kernel: Kernel) -> None:
    url = kernel.settings.database_url
    admin = bootstrap().settings.database_url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


def pipeline(kernel: Kernel) -> tuple[float, float]:
    signer = kernel.chain_signer()
    t0 = time.perf_counter()
    try:
        signer.run_until_idle(idle_s=IDLE_S, max_s=900)
    finally:
        signer.close()
    t1 = time.perf_counter()
    projector = kernel.audit_projector()
    try:
        projector.run_until_idle(idle_s=IDLE_S, max_s=900)
    finally:
        projector.close()
    t2 = time.perf_counter()
    return t1 - t0 - IDLE_S, t2 - t1 - IDLE_S


def floor(kernel: Kernel, n: int) -> float:
    signer = load_signer(kernel.settings.signing_key)  # type: ignore[arg-type]
    topic = kernel.names.actions
    consumer = Consumer(
        {
            "bootstrap.servers": kernel.settings.kafka_bootstrap,
            "group.id": f"floor-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    with psycopg.connect(kernel.settings.database_url) as conn:
        conn.execute("CREATE TABLE floor (h text, s text, payload jsonb)")
        conn.commit()
        t0 = time.perf_counter()
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        seen = 0
        while seen < n:
            msgs = consumer.consume(5000, 1.0)
            with conn.cursor() as cur, cur.copy("COPY floor FROM STDIN") as copy:
                for m in msgs:
                    payload = kernel.codec.decode(m.value() or b"").to_json()
                    canon = rfc8785.dumps(payload)
                    digest = hashlib.sha256(canon).digest()
                    copy.write_row((digest.hex(), signer.sign(digest).hex(), canon.decode()))
            conn.commit()
            seen += len(msgs)
        elapsed = time.perf_counter() - t0
    consumer.close()
    return elapsed


def _hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def signer_rss(n: int, workdir: Path) -> tuple[int, float]:
    """Peak RSS (MiB) of a ``kernel run signer`` that chains ``n`` events."""
    kernel, _ = prepare(n, workdir / f"rss{n}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERNEL_")}
    s = kernel.settings
    env.update(
        KERNEL_STATE_DIR=str(s.state_dir),
        KERNEL_BOOTSTRAP_SERVERS=s.kafka_bootstrap,
        KERNEL_TOPIC_PREFIX=s.topic_prefix,
        KERNEL_SIGNING_KEY=str(s.signing_key),
        KERNEL_SIGNER_ID=s.signer_id,
        KERNEL_METRICS_PORT="0",
        POSTGRES_URL=s.database_url,
    )
    exe = str(Path(sys.executable).with_name("kernel"))
    proc = subprocess.Popen([exe, "run", "signer"], env=env, stderr=subprocess.DEVNULL)
    t0 = time.perf_counter()
    lag_free = 0
    try:
        while lag_free < 3:
            time.sleep(1.0)
            lag_free = lag_free + 1 if _chained(kernel) >= n else 0
        peak = _hwm_kb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        drop_database(kernel)
    return peak // 1024, time.perf_counter() - t0


def _chained(kernel: Kernel) -> int:
    c = Consumer({"bootstrap.servers": kernel.settings.kafka_bootstrap, "group.id": "x"})
    topic = kernel.names.chain
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(
            c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts
        )  # includes transaction markers: an upper bound, hence the 3 quiet seconds
    finally:
        c.close()


def main() -> None:
    n = int(os.environ.get("BENCH_N", "100000"))
    sizes = [int(x) for x in os.environ.get("BENCH_RSS_SIZES", "20000,100000").split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        kernel, _ = prepare(n, Path(tmp))
        try:
            size = len(kernel.codec.encode(events(1)[0]))
            floor_s = floor(kernel, n)
            sign_s, project_s = pipeline(kernel)
        finally:
            drop_database(kernel)
        total = sign_s + project_s
        table(
            f"audit pipeline, {n:,} events of {size} bytes (Avro), same run",
            ["path", "seconds", "events/s", "of floor"],
            [
                ["floor: consume+JCS+SHA-256+Ed25519+COPY", floor_s, n / floor_s, "100%"],
                ["signer (exactly-once)", sign_s, n / sign_s, ""],
                ["projector (COPY + checkpoint)", project_s, n / project_s, ""],
                ["pipeline (signer then projector)", total, n / total, f"{floor_s / total:.0%}"],
            ],
        )
        rss = [(m, *signer_rss(m, Path(tmp))) for m in sizes]
        table(
            "kernel run signer: peak RSS (VmHWM)",
            ["events", "MiB", "seconds", "ratio"],
            [[m, mib, secs, f"{mib / rss[0][1]:.2f}x"] for m, mib, secs in rss],
        )


if __name__ == "__main__":
    main()
