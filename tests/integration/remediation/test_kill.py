"""Kill ``kernel run remediation`` (SIGKILL) while it works: each effect once, events true.

Real Kafka, a real HTTP receiver (:mod:`.receiver`), the real worker process.
Remediations arrive as operators' requests and as ``remediate`` decisions on
the policy-checks topic while the worker is killed: once from inside the
receiver, right after a webhook took effect and before its answer (the crash
between the call and the commit), and at random moments. Afterwards each
remediation's webhook took effect exactly once, by idempotency key; every
``applied`` has one ``started`` before it and a 2xx behind it; nothing
failed. Then the topics are consumed again from offset 0 by a worker with a
fresh group, and the remediations view is rebuilt (what ``kernel
remediation list`` prints): neither calls the webhook nor writes an event.

The default test kills 3 times over 12 remediations (15 keys, about 18 s); the slow
one 12 times over 60 (``pytest -m slow tests/integration/remediation``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.bootstrap import Kernel
from ops.remediation.config import load_actions
from ops.remediation.worker import RemediationWorker
from replay.remediations import remediation_view
from schemas.events import Event, now_ms
from streams.remediation.machine import request_event
from tests.e2e.conftest import settings_env
from tests.integration.core.test_producer import read_all
from tests.integration.remediation.receiver import SECRET, Receiver, serving

KERNEL = str(Path(sys.executable).with_name("kernel"))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving() as r:
        yield r


def _env(kernel: Kernel, tmp_path: Path, receiver: Receiver) -> dict[str, str]:
    secret = tmp_path / "hook.secret"
    secret.write_bytes(SECRET)
    actions = {
        "page": {
            "type": "webhook", "url": receiver.url, "timeoutS": 2, "retries": 3,
            "backoffS": 0.2, "secretFile": str(secret), "policies": ["pay-*"],
        },
        "quarantine": {"type": "quarantine", "policies": ["pay-*"]},
    }  # fmt: skip
    path = tmp_path / "actions.json"
    path.write_text(json.dumps(actions))
    env = settings_env(kernel.settings)
    env.update(
        KERNEL_STATE_DIR=str(tmp_path / "state"),
        KERNEL_METRICS_PORT="0",
        KERNEL_REMEDIATION_ACTIONS=str(path),
    )
    return env


def _decision(i: int) -> Event:
    check_id = str(uuid.uuid4())
    body = {
        "policyCheckId": check_id, "requestId": None, "decision": "remediate",
        "allowed": False, "policyId": "pay-limit", "policyVersion": 1,
        "rationale": "over the limit", "evidence": {},
        "evaluations": [{"policyId": "pay-limit", "version": 1, "severity": "MEDIUM"}],
        "notMatched": [], "outranked": [], "simMode": False, "mode": "stream",
        "subjectEventId": None,
    }  # fmt: skip
    return Event(str(uuid.uuid4()), "policyCheck", now_ms(), "sentinel", f"acct-{i}", body, 2)


def _request(i: int) -> Event:
    return request_event(
        decision_id=f"op-{i}-{uuid.uuid4().hex[:8]}", action="page", subject=f"acct-{i}",
        actor="operator:test", reason="test", high_risk=False, ts_ms=now_ms(),
    )  # fmt: skip


class Worker:
    """The worker process, started again after each kill."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.lock = threading.Lock()

    def start(self) -> None:
        with self.lock, self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [KERNEL, "run", "remediation"], env=self.env, stdout=out, stderr=out
            )

    def kill(self) -> None:
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                self.kills += 1

    def stop(self) -> None:
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()


def _steps(kernel: Kernel) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {}
    for _, event, _ in read_all(kernel, kernel.names.for_event_type("remediation")):
        out.setdefault(event.body["idempotencyKey"], []).append(event)
    return out


def _kill_run(
    kernel: Kernel, tmp_path: Path, receiver: Receiver, *, n: int, kills: int, seed: int
) -> None:
    rng = random.Random(seed)
    worker = Worker(_env(kernel, tmp_path, receiver), tmp_path / "worker.log")
    # The first kill: inside the receiver, after the effect, before the answer.
    in_call = rng.randint(2, 4)

    def kill_in_call(_key: str, count: int) -> None:
        if count == in_call:
            worker.kill()

    receiver.on_delivery = kill_in_call
    events = [_decision(i) if i % 4 == 0 else _request(i) for i in range(n)]
    expected = {
        e.body["idempotencyKey"] if e.event_type == "remediation" else None for e in events
    } - {None}
    for e in events:
        if e.event_type == "policyCheck":
            expected |= {f"{e.body['policyCheckId']}:page", f"{e.body['policyCheckId']}:quarantine"}
    hooks = {k for k in expected if not k.endswith(":quarantine")}

    producer = kernel.producer()
    feeding = threading.Thread(
        target=lambda: [(producer.publish(e), time.sleep(rng.uniform(0.05, 0.3))) for e in events]
    )
    worker.start()
    feeding.start()
    started = time.monotonic()
    deadline = started + 150
    try:
        while time.monotonic() < deadline:
            if worker.proc is not None and worker.proc.poll() is not None:
                worker.start()  # killed (by the receiver or below): a supervisor restarts it
                continue
            if worker.kills < kills and time.monotonic() - started > 2:
                time.sleep(rng.uniform(0.3, 1.5))
                worker.kill()
                continue
            steps = _steps(kernel)
            done = {
                k for k, evs in steps.items() if evs[-1].body["status"] in ("applied", "failed")
            }
            if not feeding.is_alive() and expected <= done:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"not every remediation finished; worker log:\n{_tail(tmp_path)}")
    finally:
        feeding.join(60)
        worker.stop()
        producer.close()

    steps = _steps(kernel)
    assert set(steps) == expected
    assert worker.kills >= kills
    for key, evs in steps.items():
        statuses = [e.body["status"] for e in evs]
        assert statuses == ["requested", "approved", "started", "applied"], (key, statuses)
        applied = evs[-1]
        if key in hooks:
            assert receiver.effects[key] == 1, key
            assert receiver.ok_answers[key] >= 1, key  # no applied without a 2xx
            assert 200 <= applied.body["details"]["httpStatus"] < 300
            assert receiver.bodies[key]["idempotencyKey"] == key
    assert set(receiver.effects) == hooks
    assert receiver.bad_signatures == 0
    # the kill in the call really re-sent: the receiver saw that key twice
    assert sum(receiver.deliveries.values()) > len(hooks)
    quarantined = [
        e
        for _, e, _ in read_all(kernel, kernel.names.actions)
        if e.body["action"] == "kernel.quarantine"
    ]
    assert sorted(e.body["requestId"] for e in quarantined) == sorted(
        k for k in expected if k.endswith(":quarantine")
    )

    # Replay: a fresh group consumes both topics from offset 0; the view is rebuilt.
    deliveries, before = sum(receiver.deliveries.values()), _steps(kernel)
    processor = RemediationWorker(kernel.names, load_actions(tmp_path / "actions.json"), {})
    processor.name = f"remediation-replay-{uuid.uuid4().hex[:6]}"
    runner = kernel.transactional(processor, batch_size=1)
    try:
        runner.run_until_idle(idle_s=0.5, max_s=60)
    finally:
        runner.close()
    reader = kernel.log_reader()
    try:
        view = remediation_view(reader, kernel.names.for_event_type("remediation"))
    finally:
        reader.close()
    assert {k for k, v in view.items.items() if v.status == "applied"} == expected
    assert sum(receiver.deliveries.values()) == deliveries
    assert _steps(kernel) == before


def _tail(tmp_path: Path) -> str:
    text = (tmp_path / "worker.log").read_text(errors="replace")
    return "\n".join(text.splitlines()[-40:])


def test_killed_three_times_each_webhook_takes_effect_once_and_replay_calls_none(
    kernel: Kernel, tmp_path: Path, receiver: Receiver
) -> None:
    _kill_run(kernel, tmp_path, receiver, n=12, kills=3, seed=12)


@pytest.mark.slow
def test_killed_twelve_times_over_sixty_remediations(
    kernel: Kernel, tmp_path: Path, receiver: Receiver
) -> None:
    _kill_run(kernel, tmp_path, receiver, n=60, kills=12, seed=1204)
