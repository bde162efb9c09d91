"""Lag tells the truth about dead workers, on the real broker (uuid topics and groups).

* a group the deployment expects that never started, with a backlog: flagged
  NEVER_COMMITTED on the first sample, lag = the whole log, lag seconds = the
  age of the oldest record;
* a group whose only member was killed (kill -9, no LeaveGroup): NO_MEMBER as
  soon as the broker drops the member (its session timeout), then on the next
  sample -- not after the STALL/STOP window.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer

from ops.bootstrap import Kernel
from ops.health import judge_lag
from ops.http.app import build_app
from ops.lag.expected import ExpectedGroup
from ops.lag.monitor import LagConfig, LagMonitor
from ops.lag.status import LagPolicy, Status
from projections.migrate import migrate
from streams.kafka.offsets import KafkaOffsets
from tests.e2e.conftest import make_cli
from tests.integration.sentinel.api_helpers import serve

# A long window: anything flagged here is flagged by membership, not by STALL/STOP.
POLICY = LagPolicy(window_s=600.0, stall_after_s=300.0)


@pytest.fixture
def offsets(kernel: Kernel) -> Iterator[KafkaOffsets]:
    source = KafkaOffsets(kernel.settings.kafka_bootstrap, probe_timeout_s=5.0)
    yield source
    source.close()


def _produce(kernel: Kernel, topic: str, n: int, *, partition: int, timestamp_ms: int) -> None:
    p = Producer({"bootstrap.servers": kernel.settings.kafka_bootstrap})
    for i in range(n):
        p.produce(topic, f"v{i}".encode(), partition=partition, timestamp=timestamp_ms)
    assert p.flush(10) == 0


def test_a_never_started_group_with_a_backlog_is_flagged_on_the_first_sample(
    kernel: Kernel, offsets: KafkaOffsets
) -> None:
    topic = kernel.names.actions
    old_ms = int((time.time() - 120) * 1000)
    _produce(kernel, topic, 6, partition=1, timestamp_ms=old_ms)
    group = f"{kernel.settings.topic_prefix}sentinel"
    monitor = LagMonitor(
        offsets,
        prefix=kernel.settings.topic_prefix,
        config=LagConfig(policy=POLICY),
        expected={group: ExpectedGroup((topic,))},
    )
    snap = monitor.sample()
    g = snap.group(group)
    assert g is not None, [x.group for x in snap.groups]
    assert g.status is Status.NEVER_COMMITTED
    assert g.members == 0
    (part,) = g.partitions  # empty partitions are not reported
    assert (part.partition, part.committed, part.lag) == (1, -1, 6)
    assert part.lag_seconds_source == "timestamp"
    assert part.lag_seconds >= 119
    ok, detail = judge_lag(snap, max_lag_s=3600)
    assert not ok and f"{group} is NEVER_COMMITTED" in detail


MEMBER = textwrap.dedent(
    """
    import sys, time
    from confluent_kafka import Consumer
    bootstrap, group, topic = sys.argv[1:4]
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    c.subscribe([topic])
    seen = 0
    while seen < 3:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            seen += 1
            c.commit(message=m, asynchronous=False)
    print("committed", flush=True)
    while True:
        c.poll(0.5)  # a live member: heartbeats, reads nothing more
    """
)


def test_a_group_whose_member_was_killed_is_no_member_within_one_interval(
    kernel: Kernel, offsets: KafkaOffsets
) -> None:
    topic = kernel.names.policies  # one partition
    group = f"{kernel.settings.topic_prefix}victim"
    _produce(kernel, topic, 3, partition=0, timestamp_ms=int(time.time() * 1000))
    proc = subprocess.Popen(
        [sys.executable, "-c", MEMBER, kernel.settings.kafka_bootstrap, group, topic],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "committed"
        _produce(kernel, topic, 5, partition=0, timestamp_ms=int(time.time() * 1000))
        interval = 1.0
        monitor = LagMonitor(
            offsets,
            prefix=kernel.settings.topic_prefix,
            config=LagConfig(interval_s=interval, policy=POLICY),
        )
        alive = monitor.sample([group]).group(group)
        assert alive is not None
        assert alive.members == 1 and alive.lag == 5
        assert alive.status is Status.OK
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        killed = time.monotonic()
        status = alive.status
        while status is not Status.NO_MEMBER and time.monotonic() - killed < 60:
            time.sleep(interval)
            g = monitor.sample([group]).group(group)
            assert g is not None
            status = g.status
        assert status is Status.NO_MEMBER
        # the broker drops the member after its 6 s session timeout; one interval later
        # the monitor says so (generous bound: a loaded 2-core machine)
        assert time.monotonic() - killed < 40
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_kernel_lag_doctor_and_ready_report_a_backlog_nobody_started_on(
    db_kernel: Kernel,
) -> None:
    migrate(db_kernel.settings.database_url)
    topic = db_kernel.names.actions
    _produce(db_kernel, topic, 4, partition=2, timestamp_ms=int((time.time() - 30) * 1000))
    cli = make_cli(db_kernel.settings)
    prefix = db_kernel.settings.topic_prefix

    lag = cli("lag", "--json")
    assert lag.returncode == 1, lag.stderr
    doc = json.loads(lag.stdout)
    groups = {g["group"]: g for g in doc["groups"]}
    for group in (f"{prefix}sentinel", f"{prefix}chain-signer"):
        assert groups[group]["status"] == "NEVER_COMMITTED", groups.keys()
        assert groups[group]["members"] == 0
        (part,) = [p for p in groups[group]["partitions"] if p["topic"] == topic]
        assert (part["partition"], part["committed"], part["lag"]) == (2, None, 4)
        assert part["lagSeconds"] >= 29
    table = cli("lag")
    assert table.returncode == 1 and "NEVER_COMMITTED" in table.stdout

    doctor = cli("doctor")
    assert doctor.returncode == 1
    (line,) = [ln for ln in doctor.stdout.splitlines() if ln.startswith("FAIL  lag")]
    assert f"{prefix}sentinel is NEVER_COMMITTED" in line
    assert "-> kernel run sentinel; kernel run signer   # nobody serves" in doctor.stdout

    async def ready() -> tuple[int, dict[str, Any]]:
        async with serve(build_app(db_kernel)) as client:
            resp = await client.get("/ready")
            return resp.status_code, resp.json()

    status, body = asyncio.run(ready())
    assert status == 503
    assert "NEVER_COMMITTED" in str(body["checks"]["lag"]["detail"])
