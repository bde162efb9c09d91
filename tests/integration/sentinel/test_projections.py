"""policy_registry and policy_checks projections on real Kafka and Postgres."""

from __future__ import annotations

import random
import uuid
from dataclasses import replace

import psycopg

from ops.bootstrap import Kernel
from projections.migrate import migrate
from projections.sentinel_queries import explain, get_policy, list_policies
from schemas.events import new_event
from streams.sentinel.lifecycle import ChangeKind, PolicyChange, plan_version
from streams.sentinel.policy import Effect, Severity, State
from tests.integration.core.test_producer import read_all
from tests.integration.sentinel.test_stream_runner import DENY_BIG, actions, activate


def project(kernel: Kernel) -> None:
    for runner in kernel.sentinel_projectors():
        runner.run_until_idle(idle_s=0.5)
        runner.close()


def test_registry_history_rejections_and_dead_letters(db_kernel: Kernel) -> None:
    migrate(db_kernel.settings.database_url)
    producer = db_kernel.producer()
    changes = activate(DENY_BIG)
    producer.publish_batch(changes[:2])  # created, test
    producer.publish_encoded([(db_kernel.names.policies, b"deny-big", b"garbage")])
    project(db_kernel)  # a first batch, then the rest folds onto what the table holds
    producer.publish_batch(changes[2:])  # canary, active
    stale = PolicyChange(
        ChangeKind.TRANSITIONED, DENY_BIG.with_state(State.TEST), State.DRAFT, "mallory"
    )
    producer.publish(stale.to_event())
    from streams.sentinel.lifecycle import RegistryState, apply_change

    state = RegistryState()
    for e in changes:
        state = apply_change(state, PolicyChange.from_event(e))
    v2 = plan_version(state, replace(DENY_BIG, rule="context.amount > 500"), "carol")
    producer.publish(v2.to_event())
    project(db_kernel)
    project(db_kernel)  # a restart resumes from the checkpoint: nothing twice

    with psycopg.connect(db_kernel.settings.database_url) as conn:
        shown = get_policy(conn, "deny-big")
        listed = list_policies(conn)
        rejections = conn.execute(
            "SELECT event_id::text, reason FROM policy_change_rejections"
        ).fetchall()
        assert get_policy(conn, "nope") is None
    assert shown is not None
    assert [(v["version"], v["state"]) for v in shown["versions"]] == [(1, "active"), (2, "draft")]
    assert [(h["seq"], h["change"], h["toState"], h["actor"]) for h in shown["history"]] == [
        (0, "created", "draft", "alice"),
        (1, "transitioned", "test", "bob"),
        (2, "transitioned", "canary", "bob"),
        (3, "transitioned", "active", "bob"),
        (4, "versioned", "draft", "carol"),
    ]
    assert listed == [
        {
            "id": "deny-big",
            "name": "Big transfers",
            "severity": "HIGH",
            "versions": {
                "1": {"state": "active", "canaryPercent": 10.0},
                "2": {"state": "draft", "canaryPercent": 0.0},
            },
            "updatedAt": listed[0]["updatedAt"],
        }
    ]
    assert len(rejections) == 1 and "re-read" in rejections[0][1]
    dead = [e.body for _, e, _ in read_all(db_kernel, db_kernel.names.dlq)]
    assert [(d["processor"], d["sourceValue"]) for d in dead] == [("policy_registry", b"garbage")]


def test_policy_checks_are_explained_with_the_chain_position(db_kernel: Kernel) -> None:
    migrate(db_kernel.settings.database_url)
    producer = db_kernel.producer()
    producer.publish_batch(activate(DENY_BIG))
    runner = db_kernel.sentinel()
    runner.run_until_idle(idle_s=0.5)
    events = actions(6, random.Random(3))
    positions = producer.publish_batch(events)
    runner.run_until_idle(idle_s=0.5)
    runner.close()
    project(db_kernel)
    project(db_kernel)
    checks = [e for _, e, _ in read_all(db_kernel, db_kernel.names.policy_checks)]
    # Pretend the chain signer linked the first action: explain finds it by position.
    first = positions[0]
    with psycopg.connect(db_kernel.settings.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO audit_events (id, chain, seq, event_type, payload, prev_hash, hash, "
            "signature, signer_id, ts, source_topic, source_partition, source_offset) VALUES "
            "(%s, %s, 7, 'kernelAction', '{}', 'p', 'h-7', 's', 'k', now(), %s, %s, %s)",
            (events[0].event_id, f"{first.topic}/{first.partition}", first.topic,
             first.partition, first.offset),
        )  # fmt: skip
        count = conn.execute("SELECT count(*) FROM policy_checks").fetchone()
        by_event = {c.body["subjectEventId"]: c for c in checks}
        chained = explain(conn, by_event[events[0].event_id].body["policyCheckId"])
        plain = explain(conn, by_event[events[1].event_id].body["policyCheckId"])
    assert count == (len(events),)
    assert chained is not None and plain is not None
    assert chained["evidence"]["chain"] == {
        "auditId": events[0].event_id,
        "chain": f"{first.topic}/{first.partition}",
        "seq": 7,
        "hash": "h-7",
    }
    assert chained["evidence"]["event"]["offset"] == first.offset
    assert plain["evidence"]["chain"] is None
    assert chained["evaluations"][0]["policyId"] == "deny-big"
    assert chained["record"]["topic"] == db_kernel.names.policy_checks
    expected = "deny" if events[0].body["context"]["amount"] > 1000 else "allow"
    assert chained["decision"] == expected and chained["mode"] == "stream"


def test_explain_expands_the_compact_path_and_reads_v1_checks(db_kernel: Kernel) -> None:
    migrate(db_kernel.settings.database_url)
    producer = db_kernel.producer()
    producer.publish_batch(activate(DENY_BIG))
    runner = db_kernel.sentinel()
    runner.run_until_idle(idle_s=0.5)
    small = new_event(
        "kernelAction", "agent:5", "acct-1", {"action": "payments.send", "context": {"amount": 7}}
    )
    producer.publish(small)
    runner.run_until_idle(idle_s=0.5)
    runner.close()
    (check,) = [e for _, e, _ in read_all(db_kernel, db_kernel.names.policy_checks)]
    # on the log: deny-big did not match, so it is named only
    assert check.schema_version == 3
    assert check.body["rollout"] == []  # no canary in scope
    assert (check.body["evaluations"], check.body["notMatched"]) == ([], ["deny-big@1"])
    # a policyCheck v1 (every entry in full, no notMatched) from before the upgrade
    v1_entry = {"policyId": "old", "version": 4, "result": "not_matched", "reason": "not matched"}
    v1_body = {**check.body, "policyCheckId": str(uuid.uuid4()), "evaluations": [v1_entry]}
    del v1_body["notMatched"]
    producer.publish(replace(check, event_id=str(uuid.uuid4()), body=v1_body, schema_version=1))
    project(db_kernel)
    with psycopg.connect(db_kernel.settings.database_url) as conn:
        explained = explain(conn, check.body["policyCheckId"])
        old = explain(conn, v1_body["policyCheckId"])
    assert explained is not None and old is not None
    assert explained["evaluations"] == [
        {
            "policyId": "deny-big",
            "version": 1,
            "state": "active",
            "role": "enforced",
            "severity": "HIGH",
            "result": "not_matched",
            "effect": None,
            "error": None,
            "valuesRead": {"context.amount": 7, "actor": "agent:5"},
            "missing": [],
            "reason": "not matched",
        }
    ]
    assert old["evaluations"] == [v1_entry]
    assert explained["rollout"] == [] and old["rollout"] == []  # a v1 row: the column's default


def test_explain_expands_the_matched_policies_that_did_not_decide(db_kernel: Kernel) -> None:
    migrate(db_kernel.settings.database_url)
    escalate = replace(
        DENY_BIG,
        policy_id="escalate-big",
        name="Big transfers, reviewed",
        severity=Severity.LOW,
        rule="context.amount > 500",
        effect=Effect.ESCALATE,
        rationale="{policy.id}: {context.amount} by {actor}",
    )
    producer = db_kernel.producer()
    producer.publish_batch([*activate(DENY_BIG), *activate(escalate)])
    runner = db_kernel.sentinel()
    runner.run_until_idle(idle_s=0.5)
    body = {"action": "payments.send", "context": {"amount": 4000}}
    big = new_event("kernelAction", "agent:5", "acct-1", body)
    producer.publish(big)
    runner.run_until_idle(idle_s=0.5)
    runner.close()
    (check,) = [e for _, e, _ in read_all(db_kernel, db_kernel.names.policy_checks)]
    # on the log: deny-big decided; escalate-big matched too and is named only
    assert (check.body["decision"], check.body["policyId"]) == ("deny", "deny-big")
    assert [e["policyId"] for e in check.body["evaluations"]] == ["deny-big"]
    assert (check.body["notMatched"], check.body["outranked"]) == ([], ["escalate-big@1"])
    project(db_kernel)
    with psycopg.connect(db_kernel.settings.database_url) as conn:
        explained = explain(conn, check.body["policyCheckId"])
    assert explained is not None
    assert explained["evaluations"] == [
        check.body["evaluations"][0],
        {
            "policyId": "escalate-big",
            "version": 1,
            "state": "active",
            "role": "enforced",
            "severity": "LOW",
            "result": "matched",
            "effect": "escalate",
            "error": None,
            "valuesRead": {"context.amount": 4000, "actor": "agent:5"},
            "missing": [],
            "reason": "escalate lost to deny of deny-big v1 (lower precedence)",
        },
    ]
