"""The DR drill on the real stack: drop the projections, rebuild from the log, equal."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from ops.bootstrap import Kernel
from ops.workers.sentinel import build_runner
from ops.workers.sentinel_projector import build_runners
from schemas.events import Event
from streams.sentinel.lifecycle import plan_create, plan_transition
from streams.sentinel.policy import State, loads_policy
from tests.e2e.conftest import make_cli
from tests.integration.core.test_producer import _actions

POLICY = {
    "id": "big",
    "name": "big",
    "severity": "HIGH",
    "scope": {"eventTypes": ["kernelAction"]},
    "rule": "context.i > 5",
    "effect": "deny",
    "rationale": "{actor} i={context.i}",
}


def _drain(runner: object) -> None:
    try:
        runner.run_until_idle(idle_s=1.0)  # type: ignore[attr-defined]
    finally:
        runner.close()  # type: ignore[attr-defined]


def _activate(kernel: Kernel) -> None:
    from streams.sentinel.registry import PolicyRegistry

    producer = kernel.producer()
    registry = PolicyRegistry()
    policy = loads_policy(json.dumps(POLICY))
    changes: list[Event] = []
    change = plan_create(registry.state, policy, "t")
    for target, pct in (
        (None, None),
        (State.TEST, None),
        (State.CANARY, 100.0),
        (State.ACTIVE, None),
    ):
        if target is not None:
            change = plan_transition(registry.state, "big", 1, target, "t", canary_percent=pct)
        event = change.to_event()
        assert registry.apply_event(event)
        changes.append(event)
    producer.publish_batch(changes)


def test_drop_rebuild_from_the_log_and_prove_equal(
    audit_kernel: Kernel, signers_file: Path
) -> None:
    kernel = audit_kernel
    _activate(kernel)
    kernel.producer().publish_batch(_actions(10, "a") + _actions(8, "b"))
    _drain(build_runner(kernel))
    _drain(kernel.chain_signer())
    _drain(kernel.checkpointer())
    _drain(kernel.audit_projector())
    for runner in build_runners(kernel):
        _drain(runner)
    with psycopg.connect(kernel.settings.database_url) as conn:
        (checks,) = conn.execute("SELECT count(*) FROM policy_checks").fetchone()  # type: ignore[misc]
        (links,) = conn.execute("SELECT count(*) FROM audit_events").fetchone()  # type: ignore[misc]
    assert checks == 18
    assert links == 18 + 18 + 4  # actions, their decisions, the policy changes

    done = make_cli(kernel.settings)(
        "dr-drill", "--signers", str(signers_file), "--yes", "--json", "--workers", "2"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["identical"], report["differences"]
    assert report["tables"]["audit_events"]["rows"] == links
    assert report["tables"]["policy_checks"]["rows"] == 18
    assert report["recoverySeconds"] > 0


def test_drill_refuses_without_yes(audit_kernel: Kernel, signers_file: Path) -> None:
    done = make_cli(audit_kernel.settings)("dr-drill", "--signers", str(signers_file))
    assert done.returncode == 2
    assert "--yes" in done.stderr
