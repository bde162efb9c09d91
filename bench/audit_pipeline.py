"""End-to-end audit pipeline: N published events -> signed -> projected in Postgres.

Measured on the stack named by the environment (for the test stack:
``KERNEL_STATE_DIR=/var/lib/kernel-test KERNEL_KAFKA_PORT=29092 KERNEL_PG_PORT=25432``),
in a fresh topic prefix and database. N (``BENCH_N``, default 100,000) events of
~400 bytes are published first; then, timed:

- deployed: ``kernel run signer`` and ``kernel run audit-projector`` started
  together as processes (as deployed) on the published backlog -- one signer,
  or ``BENCH_SIGNERS`` (e.g. "1,2") instances of it sharing the partitions
  (``--instance 0``, ``--instance 1``: scale-out); timed from
  their start (process start, group join and recovery included) and from the
  first projected row until Postgres holds all N rows (polled every 100 ms).
- sequential: ``Kernel.chain_signer()`` (exactly-once, one Kafka transaction per
  batch) to idle, then ``Kernel.audit_projector()`` (COPY + checkpoint per
  Postgres transaction) to idle, in this process, one after the other: what
  each stage costs alone. The idle wait that ends each run is subtracted.
- floor: the same records through the bare minimum: confluent-kafka consume,
  JCS (``rfc8785``), SHA-256, Ed25519 sign, COPY into a plain table.

With ``KERNEL_SIGNER_BACKEND=pkcs11`` (and ``KERNEL_PKCS11_*``, ``SOFTHSM2_CONF``) in
the environment, the signer signs through that token (key ``bench-signer``,
generated when missing), in this process and in the spawned workers alike.

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
from ops.pkcs11_config import token_config
from projections.migrate import migrate
from schemas.events import Event, new_event
from streams.chain.keys import generate_key, load_signer, signers_document
from streams.chain.pkcs11_signer import generate_token_key
from streams.chain.signing import Signer

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
    signer: Signer = load_signer(key)
    if kernel.settings.signer_backend == "pkcs11":  # KERNEL_SIGNER_BACKEND=pkcs11: the token
        generate_token_key(token_config(kernel.settings), if_missing=True)
        signer = kernel.signer()
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


def pipeline(kernel: Kernel, idle_s: float = IDLE_S) -> tuple[float, float]:
    """Signer to idle, then projector to idle: the seconds of each (the idle wait excluded)."""
    seconds = []
    for make in (kernel.chain_signer, kernel.audit_projector):
        t0 = time.perf_counter()
        runner = make()
        try:
            runner.run_until_idle(idle_s=idle_s, max_s=3600)
        finally:
            runner.close()
        seconds.append(time.perf_counter() - t0 - idle_s)
    return seconds[0], seconds[1]


def floor(kernel: Kernel, n: int) -> float:
    signer = kernel.signer()  # the key file, or the token with KERNEL_SIGNER_BACKEND=pkcs11
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


def worker_env(kernel: Kernel) -> dict[str, str]:
    """The environment of a ``kernel`` subprocess on ``kernel``'s topics, database and key."""
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
    if s.signer_backend == "pkcs11":  # the token of the environment (SOFTHSM2_CONF passes)
        env.update(
            {k: v for k, v in os.environ.items() if k.startswith("KERNEL_PKCS11_")},
            KERNEL_SIGNER_BACKEND="pkcs11",
        )
    return env


def _spawn(kernel: Kernel, worker: str, instance: int = 0) -> subprocess.Popen[bytes]:
    exe = str(Path(sys.executable).with_name("kernel"))
    env = {**worker_env(kernel), "KERNEL_INSTANCE_ID": str(instance)}
    return subprocess.Popen([exe, "run", worker], env=env, stderr=subprocess.DEVNULL)


def deployed(kernel: Kernel, n: int, signers: int = 1) -> tuple[float, float, dict[str, float]]:
    """Signer(s) and projector as processes, on the backlog of ``n`` published events.

    Returns the seconds from their start to N rows in Postgres, the rate from
    the first projected row to the last, and the CPU seconds each component
    spent meanwhile (both workers, the broker, the Postgres backends): the
    machine's capacity is its cores over their sum.
    """
    stack = bootstrap().stack()  # the running stack's (the kernel's state dir is a temp dir)
    kafka_pid = stack.kafka.pid()
    pg_pid = _postmaster_pid(stack.postgres.data)
    if not kafka_pid or not pg_pid:
        raise RuntimeError("the broker and Postgres must be running (kernel up)")
    with psycopg.connect(kernel.settings.database_url, autocommit=True) as conn:
        base = {"broker": _cpu_s([kafka_pid]), "postgres": _cpu_s(_children(pg_pid))}
        t0 = time.perf_counter()
        procs = {f"signer {i}": _spawn(kernel, "signer", i) for i in range(signers)}
        procs["projector"] = _spawn(kernel, "audit-projector")
        first = None
        try:
            while True:
                time.sleep(0.1)
                row = conn.execute("SELECT count(*) FROM audit_events").fetchone()
                count = int(row[0]) if row else 0
                if count and first is None:
                    first = (time.perf_counter(), count)
                if count >= n:
                    break
                if time.perf_counter() - t0 > 900:
                    raise TimeoutError(f"{count} of {n} rows after 900 s")
            t1 = time.perf_counter()
            cpu = {name: _cpu_s([proc.pid]) for name, proc in procs.items()}
            cpu["broker"] = _cpu_s([kafka_pid]) - base["broker"]
            cpu["postgres"] = _cpu_s(_children(pg_pid)) - base["postgres"]
        finally:
            for proc in procs.values():
                proc.send_signal(signal.SIGTERM)
            for proc in procs.values():
                proc.wait(timeout=30)
    assert first is not None
    steady = (n - first[1]) / (t1 - first[0]) if t1 > first[0] else float("nan")
    return t1 - t0, steady, cpu


def _postmaster_pid(data_dir: Path) -> int:
    """The first line of Postgres's ``postmaster.pid`` (the file has several)."""
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` (all their threads), from /proc."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _children(parent: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                kids.append(int(entry.name))
    return kids


def signer_rss(n: int, workdir: Path) -> tuple[int, float]:
    """Peak RSS (MiB) of a ``kernel run signer`` that chains ``n`` events."""
    kernel, _ = prepare(n, workdir / f"rss{n}")
    proc = _spawn(kernel, "signer")
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
    sizes = [int(x) for x in os.environ.get("BENCH_RSS_SIZES", "20000,100000").split(",") if x]
    scale = [int(x) for x in os.environ.get("BENCH_SIGNERS", "1").split(",") if x]
    with tempfile.TemporaryDirectory() as tmp:
        kernel, _ = prepare(n, Path(tmp))
        kernel2, _ = prepare(n, Path(tmp) / "deployed")
        extra = [prepare(n, Path(tmp) / f"deployed{k}")[0] for k in scale if k != 1]
        try:
            size = len(kernel.codec.encode(events(1)[0]))
            floor_s = floor(kernel, n)
            deployed_s, steady, cpu = deployed(kernel2, n)
            scaled = [
                (k, *deployed(kx, n, k)[:2])
                for k, kx in zip((k for k in scale if k != 1), extra, strict=True)
            ]
            sign_s, project_s = pipeline(kernel)
        finally:
            for k in (kernel, kernel2, *extra):
                drop_database(k)
        total = sign_s + project_s
        floor_rate = n / floor_s
        table(
            f"audit pipeline, {n:,} events of {size} bytes (Avro), same run",
            ["path", "seconds", "events/s", "of floor"],
            [
                ["floor: consume+JCS+SHA-256+Ed25519+COPY", floor_s, floor_rate, "100%"],
                [
                    "deployed: signer + projector processes, start to last row",
                    deployed_s,
                    n / deployed_s,
                    f"{n / deployed_s / floor_rate:.0%}",
                ],
                ["deployed, first row to last row", "", steady, f"{steady / floor_rate:.0%}"],
                *[
                    row
                    for k, secs, rate in scaled
                    for row in (
                        [
                            f"deployed, {k} signer instances, start to last row",
                            secs,
                            n / secs,
                            f"{n / secs / floor_rate:.0%}",
                        ],
                        [
                            f"deployed, {k} signer instances, first row to last",
                            "",
                            rate,
                            f"{rate / floor_rate:.0%}",
                        ],
                    )
                ],
                ["signer alone (exactly-once)", sign_s, n / sign_s, ""],
                ["projector alone (COPY + checkpoint)", project_s, n / project_s, ""],
                ["signer then projector", total, n / total, f"{floor_s / total:.0%}"],
            ],
        )
        total_cpu = sum(cpu.values())
        table(
            "deployed run: CPU per event (all threads; capacity = cores / total)",
            ["component", "CPU seconds", "µs/event", "share"],
            [
                *[[k, v, v / n * 1e6, f"{v / total_cpu:.0%}"] for k, v in cpu.items()],
                ["total", total_cpu, total_cpu / n * 1e6, "100%"],
                ["capacity on 2 cores (events/s)", "", 2 * n / total_cpu, ""],
            ],
        )
        rss = [(m, *signer_rss(m, Path(tmp))) for m in sizes]
        if not rss:
            return  # BENCH_RSS_SIZES="" skips the RSS runs
        table(
            "kernel run signer: peak RSS (VmHWM)",
            ["events", "MiB", "seconds", "ratio"],
            [[m, mib, secs, f"{mib / rss[0][1]:.2f}x"] for m, mib, secs in rss],
        )


if __name__ == "__main__":
    main()
