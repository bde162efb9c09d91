"""Two chain-signer instances in separate processes share the partitions; kill -9 one.

Each instance is its own process with its own instance id (transactional id and
static group member ``{group}-{id}``). After a kill -9 of one, the other takes
its partitions once the dead member's session times out (6 s) and its open
transaction expires; every event is chained exactly once, the chains are
gap-free and equal the uninterrupted fold, and the restarted instance rejoins.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient

from ops.bootstrap import Kernel
from schemas.events import new_event
from tests.integration.audit.test_crash import _count, _env, _wait_rows, check_against_fold

KERNEL = str(Path(sys.executable).with_name("kernel"))
# A signer of a given instance id, until SIGTERM (the CLI's --instance belongs to `kernel run`).
_SIGNER = """
import signal, sys, threading
from ops.bootstrap import bootstrap
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
runner = bootstrap().chain_signer(instance_id=sys.argv[1])
try:
    runner.run(stop.is_set)
finally:
    runner.close()
"""


def _events(n: int, tag: str) -> list[object]:
    return [
        new_event("kernelAction", "svc", f"acct-{i % 9}", {"action": f"{tag}{i}", "context": {}})
        for i in range(n)
    ]


def _members(kernel: Kernel) -> dict[str, int]:
    """group.instance.id -> number of assigned partitions, of the signer's group."""
    admin = AdminClient({"bootstrap.servers": kernel.settings.kafka_bootstrap})
    group = f"{kernel.names.prefix}chain-signer"
    described = admin.describe_consumer_groups([group])[group].result(30)
    return {str(m.group_instance_id): len(m.assignment.topic_partitions) for m in described.members}


def _wait_members(kernel: Kernel, n: int, timeout_s: float = 90) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    while True:
        members = _members(kernel)
        if len(members) == n and all(members.values()):
            return members
        assert time.monotonic() < deadline, f"group members {members}, wanted {n} with work"
        time.sleep(0.5)


def test_two_signer_processes_share_partitions_and_survive_a_kill9(
    audit_kernel: Kernel, signers_file: Path, tmp_path: Path
) -> None:
    env = _env(audit_kernel)
    url = audit_kernel.settings.database_url
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(argv: list[str], name: str) -> None:
        with (tmp_path / f"{name}-{time.monotonic_ns()}.log").open("wb") as log:
            procs[name] = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)

    def signer(instance: str) -> None:
        start([sys.executable, "-c", _SIGNER, instance], f"signer-{instance}")

    producer = audit_kernel.producer()
    try:
        signer("0")
        signer("1")
        start([KERNEL, "run", "audit-projector"], "projector")
        producer.publish_batch(_events(90, "a"))  # type: ignore[arg-type]
        _wait_rows(url, 90, 120, tmp_path)
        _wait_members(audit_kernel, 2)

        victim = procs.pop("signer-1")
        os.kill(victim.pid, signal.SIGKILL)
        killed = time.monotonic()
        victim.wait(timeout=10)
        producer.publish_batch(_events(90, "b"))  # type: ignore[arg-type]
        _wait_rows(url, 180, 120, tmp_path)
        failover_s = time.monotonic() - killed
        print(f"kill -9 of one of two signers: all events chained again after {failover_s:.1f}s")

        signer("1")  # same instance id: its static membership and transactional id back
        producer.publish_batch(_events(90, "c"))  # type: ignore[arg-type]
        _wait_rows(url, 270, 120, tmp_path)
        _wait_members(audit_kernel, 2)
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    assert _count(url) == 270
    logs = " ".join(p.read_text() for p in tmp_path.glob("signer-*.log"))
    assert "Traceback" not in logs
    check_against_fold(audit_kernel, signers_file)
