"""Lag monitor cost at 10 groups x 50 partitions, and time from a stall to STALL.

Creates 10 uuid-prefixed topics of 50 partitions, writes 20 records to each
partition and commits, for 10 groups named with the prefix, offsets 5 behind
the end (every partition lags, so every one is probed). Then samples the
whole set repeatedly: wall time and CPU (process time, librdkafka threads
included) per sample, with and without reading head-record timestamps, and
resident memory. Finally one consumer commits as it goes and then stops: the
time from its last commit to the STALL status (and STOP) is measured with a
short policy (window 10 s, stall after 3 s, sampled every 0.5 s).

Run against a broker: ``KERNEL_BOOTSTRAP_SERVERS=127.0.0.1:29092 python -m bench.lag_exporter``.
"""

from __future__ import annotations

import resource
import statistics
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from bench._table import table
from ops.bootstrap import bootstrap
from ops.lag.exporter import LagExporter
from ops.lag.monitor import LagConfig, LagMonitor
from ops.lag.status import LagPolicy, Status
from streams.kafka.offsets import KafkaOffsets

GROUPS, PARTITIONS, RECORDS, BEHIND, ROUNDS = 10, 50, 20, 5, 10


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 1e6


def _setup(bootstrap_servers: str, prefix: str) -> list[str]:
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    topics = [f"{prefix}topic{i}" for i in range(GROUPS)]
    for fut in admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics]).values():
        fut.result()
    p = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 5})
    for t in topics:
        for part in range(PARTITIONS):
            for i in range(RECORDS):
                p.produce(t, f"r{i}".encode(), partition=part)
    p.flush(60)
    for i, t in enumerate(topics):
        c = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"{prefix}group{i}"})
        c.commit(
            offsets=[TopicPartition(t, part, RECORDS - BEHIND) for part in range(PARTITIONS)],
            asynchronous=False,
        )
        c.close()
    return topics


def _cost(offsets: KafkaOffsets, prefix: str, probe: bool) -> list[object]:
    monitor = LagMonitor(offsets, prefix=prefix, probe=probe)
    exporter = LagExporter(monitor)
    snap = exporter.sample_and_publish()  # warm-up: connections, metadata
    tracked = sum(len(g.partitions) for g in snap.groups)
    walls, cpus = [], []
    for _ in range(ROUNDS):
        w0, c0 = time.perf_counter(), time.process_time()
        exporter.sample_and_publish()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    return [
        "probe heads" if probe else "offsets only",
        tracked,
        wall * 1000,
        cpu * 1000,
        cpu / 15 * 100,  # CPU share at the default 15 s sampling interval
        _rss_mb(),
    ]


def _stall_time(bootstrap_servers: str, prefix: str, offsets: KafkaOffsets) -> list[object]:
    topic, group, interval = f"{prefix}topic0", f"{prefix}stalling", 0.5
    policy = LagPolicy(window_s=10.0, stall_after_s=3.0)
    monitor = LagMonitor(
        offsets,
        prefix=prefix,
        config=LagConfig(groups=(group,), interval_s=interval, policy=policy),
    )
    p = Producer({"bootstrap.servers": bootstrap_servers})
    c = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group})
    end = RECORDS
    for _ in range(4):  # healthy: producing and committing
        p.produce(topic, b"x", partition=0)
        p.flush(10)
        end += 1
        c.commit(offsets=[TopicPartition(topic, 0, end)], asynchronous=False)
        monitor.sample([group])
        time.sleep(interval)
    last_commit = time.monotonic()
    seen: dict[Status, float] = {}
    while Status.STOP not in seen and time.monotonic() - last_commit < 30:
        p.produce(topic, b"x", partition=0)
        p.flush(10)
        g = monitor.sample([group]).group(group)
        assert g is not None
        seen.setdefault(g.status, time.monotonic() - last_commit)
        time.sleep(interval)
    c.close()
    return [
        f"window {policy.window_s:.0f}s, stall {policy.stall_after_s:.0f}s, every {interval}s",
        seen.get(Status.STALL, float("nan")),
        seen.get(Status.STOP, float("nan")),
    ]


def main() -> None:
    kernel = bootstrap()
    servers = kernel.settings.kafka_bootstrap
    prefix = f"benchlag{uuid.uuid4().hex[:8]}."
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    topics = _setup(servers, prefix)
    setup_s = time.perf_counter() - t0
    offsets = KafkaOffsets(servers)
    try:
        rows = [_cost(offsets, prefix, probe) for probe in (False, True)]
        table(
            f"lag monitor, {GROUPS} groups x {PARTITIONS} partitions "
            f"(median of {ROUNDS} samples; setup {setup_s:.1f}s; RSS before {rss0:.0f} MB)",
            ["mode", "partitions", "wall ms/sample", "CPU ms/sample", "CPU % @15s", "RSS MB"],
            rows,
        )
        ratio = float(str(rows[1][3])) / max(float(str(rows[0][3])), 1e-9)
        print(f"probe/offsets-only CPU ratio (same run): {ratio:.2f}")
        table(
            "time from the last commit to the status",
            ["policy", "to STALL s", "to STOP s"],
            [_stall_time(servers, prefix, offsets)],
        )
    finally:
        offsets.close()
        AdminClient({"bootstrap.servers": servers}).delete_topics(topics)


if __name__ == "__main__":
    main()
