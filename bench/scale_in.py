"""Scale-in failover: one of two ``kernel run WORKER`` instances is killed for good.

Needs a running stack (``kernel up``; any ports); nothing is killed but the
worker it starts, under a topic prefix of its own. Two instances of
``BENCH_WORKER`` (``signer``, the default, or ``sentinel``: the workers that read actions)
run as separate processes while ~``BENCH_RATE`` (default 100) events/s are
published. Per round (``BENCH_ROUNDS``, default 3), instance 1 is kill -9'd and
not restarted until the round ends; printed per round, in seconds from the kill:

- ``member gone``: the group shows one member (the dead static member's session timed out);
- ``assigned``: instance 0 logged its new assignment;
- ``recovered``: instance 0 logged its state recovered (and how long ``recover`` took);
- ``served``: every partition instance 1 held has a committed offset past its
  position at the kill (the measure of issue 9 item 4: within 15 s).

``python -m bench.scale_in`` with the stack's ``KERNEL_*`` settings in the environment.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import orjson
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from bench._table import table
from ops.bootstrap import Kernel
from ops.config import Settings
from schemas.events import new_event

_GROUPS = {"signer": "chain-signer", "sentinel": "sentinel"}  # the workers that read actions


def main() -> None:
    worker = os.environ.get("BENCH_WORKER", "signer")
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    rate = float(os.environ.get("BENCH_RATE", "100"))
    prefix = f"si{uuid.uuid4().hex[:8]}."
    settings = replace(Settings.from_env(dict(os.environ)), topic_prefix=prefix)
    kernel = Kernel(settings)
    kernel.topic_admin().ensure()
    group = f"{kernel.names.prefix}{_GROUPS[worker]}"
    logs = Path(os.environ.get("BENCH_LOG_DIR", f"/var/tmp/bench-scale-in/{settings.topic_prefix}"))
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "KERNEL_TOPIC_PREFIX": settings.topic_prefix, "KERNEL_METRICS_PORT": "0"}
    if kernel.settings.signing_key is not None:
        env.setdefault("KERNEL_SIGNING_KEY", str(kernel.settings.signing_key))
    kernel_cli = str(Path(sys.executable).with_name("kernel"))
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(instance: str) -> Path:
        path = logs / f"{worker}-{instance}-{time.monotonic_ns()}.log"
        with path.open("wb") as out:
            procs[instance] = subprocess.Popen(
                [kernel_cli, "run", worker, "--instance", instance],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        return path

    stop = threading.Event()

    def publish() -> None:
        producer = kernel.producer()
        while not stop.is_set():
            event = new_event("kernelAction", "bench", f"s{time.monotonic_ns() % 16}",
                              {"action": "touch", "resource": "r", "context": {}})  # fmt: skip
            try:
                producer.publish_batch([event])
            except Exception:  # keep the rate; the bench measures the worker
                time.sleep(0.2)
            time.sleep(1 / rate)

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    offsets = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group,
                        "enable.auto.commit": False})  # fmt: skip

    def members() -> dict[str, list[tuple[str, int]]]:
        got = admin.describe_consumer_groups([group])[group].result(10)
        return {
            str(m.group_instance_id).rsplit("-", 1)[-1]: [
                (tp.topic, tp.partition) for tp in m.assignment.topic_partitions
            ]
            for m in got.members
        }

    def committed(tps: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        got = offsets.committed([TopicPartition(t, p) for t, p in tps], 10)
        return {(tp.topic, tp.partition): tp.offset for tp in got}

    def both_working(deadline_s: float = 120) -> dict[str, list[tuple[str, int]]]:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            for instance, proc in procs.items():
                if proc.poll() is not None:
                    code = proc.returncode
                    raise SystemExit(f"instance {instance} exited {code}; logs in {logs}")
            try:
                m = members()
            except Exception:
                m = {}
            if set(m) == {"0", "1"} and all(m.values()):
                return m
            time.sleep(0.5)
        raise SystemExit(f"the two instances never shared the work: {m}")

    log0 = start("0")
    start("1")
    pub = threading.Thread(target=publish, daemon=True)
    pub.start()
    rows: list[list[object]] = []
    try:
        for i in range(rounds):
            # The partitions with traffic (the bench publishes actions only).
            held = [tp for tp in both_working()["1"] if tp[0] == kernel.names.actions]
            time.sleep(5)  # steady state: both committing
            at_kill = committed(held)
            seen_lines = len(log0.read_text(errors="replace").splitlines())
            killed = time.monotonic()
            killed_wall = time.time()
            procs["1"].send_signal(signal.SIGKILL)
            procs["1"].wait()
            gone = served = None
            waiting = set(held)
            while time.monotonic() - killed < 120 and (waiting or gone is None):
                now = time.monotonic() - killed
                if gone is None:
                    try:
                        if set(members()) == {"0"}:
                            gone = now
                    except Exception:
                        pass
                for tp, off in committed(sorted(waiting)).items():
                    if off > at_kill[tp]:
                        waiting.discard(tp)
                if not waiting and served is None:
                    served = now
                time.sleep(0.2)
            assigned, recovered, took = _phases(log0, seen_lines, killed_wall)
            rows.append([i + 1, len(held), gone, assigned, recovered, took, served])
            if procs["0"].poll() is not None:
                raise SystemExit(f"instance 0 exited {procs['0'].returncode}; see {log0}")
            start("1")
    finally:
        stop.set()
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        offsets.close()
    table(
        f"scale-in failover: kernel run {worker}, 2 instances, kill -9 of one for good "
        f"(s after the kill; {rate:g} events/s)",
        ["round", "partitions", "member gone", "assigned", "recovered", "recover took", "served"],
        [[c if c is not None else "never" for c in r] for r in rows],
    )
    got = [r[-1] for r in rows if r[-1] is not None]
    if got:
        print(f"served: median {statistics.median(got):.2f}s, max {max(got):.2f}s (n={len(got)})")


def _phases(log: Path, skip: int, since: float) -> tuple[float | None, float | None, float | None]:
    """Seconds from ``since`` (epoch) to instance 0's last assignment and recovery lines."""
    assigned = recovered = took = None
    for line in log.read_text(errors="replace").splitlines()[skip:]:
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        msg = str(rec.get("msg", rec.get("message", "")))
        at = datetime.fromisoformat(str(rec.get("ts"))).timestamp() - since
        if ": assigned " in msg:
            assigned = at
        elif "state recovered" in msg:
            recovered = at
            took = float(msg.split(" in ", 1)[1].split("s", 1)[0])
    return assigned, recovered, took


if __name__ == "__main__":
    main()
