"""The DR drill on the real stack: drop the projections, rebuild from the log, equal --
and, when live was altered behind the log's back, exit 1 naming the first difference."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from ops.bootstrap import Kernel
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


def _deploy(kernel: Kernel) -> tuple[int, int]:
    """A policy, 18 actions decided, chained, checkpointed and projected: (checks, links)."""
    _activate(kernel)
    kernel.producer().publish_batch(_actions(10, "a") + _actions(8, "b"))
    _drain(kernel.sentinel())
    _drain(kernel.chain_signer())
    _drain(kernel.checkpointer())
    _drain(kernel.audit_projector())
    for runner in kernel.sentinel_projectors():
        _drain(runner)
    with psycopg.connect(kernel.settings.database_url) as conn:
        (checks,) = conn.execute("SELECT count(*) FROM policy_checks").fetchone()  # type: ignore[misc]
        (links,) = conn.execute("SELECT count(*) FROM audit_events").fetchone()  # type: ignore[misc]
    assert checks == 18
    assert links == 18 + 18 + 4  # actions, their decisions, the policy changes
    return checks, links


def test_drop_rebuild_from_the_log_and_prove_equal(
    audit_kernel: Kernel, signers_file: Path
) -> None:
    kernel = audit_kernel
    _, links = _deploy(kernel)

    done = make_cli(kernel.settings)(
        "dr-drill", "--signers", str(signers_file), "--yes", "--json", "--workers", "2"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["identical"], report["differences"]
    assert report["tables"]["audit_events"]["rows"] == links
    assert report["tables"]["policy_checks"]["rows"] == 18
    assert report["recoverySeconds"] > 0
    assert report["firstDifferences"] == {}


def test_a_live_table_that_differs_from_the_log_fails_the_drill_naming_the_row(
    audit_kernel: Kernel, signers_file: Path
) -> None:
    """Live altered as a superuser with the triggers off, and a row the log never held."""
    kernel = audit_kernel
    _deploy(kernel)
    with psycopg.connect(kernel.settings.database_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # triggers off (superuser)
        row = conn.execute(
            "SELECT chain, seq FROM audit_events WHERE seq = 1 ORDER BY chain LIMIT 1"
        ).fetchone()
        assert row is not None
        chain, seq = row
        conn.execute(
            "UPDATE audit_events SET payload = jsonb_set(payload, '{actor}', '\"mallory\"') "
            "WHERE chain = %s AND seq = %s",
            (chain, seq),
        )
        forged = "00000000-0000-4000-8000-000000000001"
        conn.execute("CREATE TEMP TABLE forged AS SELECT * FROM policy_checks LIMIT 1")
        conn.execute("UPDATE forged SET policy_check_id = %s", (forged,))
        conn.execute("INSERT INTO policy_checks SELECT * FROM forged")

    done = make_cli(kernel.settings)("dr-drill", "--signers", str(signers_file), "--yes")
    assert done.returncode == 1, done.stdout + done.stderr
    differs = [line for line in done.stdout.splitlines() if line.startswith("DIFFERS ")]
    assert "NOT identical" in done.stdout
    (audit,) = [d for d in differs if d.startswith("DIFFERS audit_events:")]
    assert f'first difference: row ["{chain}", {seq}] differs in payload' in audit, audit
    (decisions,) = [d for d in differs if d.startswith("DIFFERS policy_checks:")]
    assert f'row ["{forged}"] is in live but not in the rebuild' in decisions, decisions
    assert not [d for d in differs if d.startswith("DIFFERS chain ")]  # heads untouched
    # The rebuild is the log's truth: the forgery is gone, the altered row restored.
    with psycopg.connect(kernel.settings.database_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM policy_checks WHERE policy_check_id = %s", (forged,)
        ).fetchone() == (0,)
        actor = conn.execute(
            "SELECT payload->>'actor' FROM audit_events WHERE chain = %s AND seq = %s",
            (chain, seq),
        ).fetchone()
    assert actor is not None and actor[0] != "mallory"


def test_drill_refuses_without_yes(audit_kernel: Kernel, signers_file: Path) -> None:
    done = make_cli(audit_kernel.settings)("dr-drill", "--signers", str(signers_file))
    assert done.returncode == 2
    assert "--yes" in done.stderr
