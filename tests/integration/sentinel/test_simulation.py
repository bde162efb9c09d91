"""``kernel policy simulate`` over real history on Kafka: exact counts, bounds, the report event."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import streams.sentinel.kafka_history as kernel_history
from ops.bootstrap import Kernel
from ops.cli import build_parser, main
from ops.http.app import build_app
from ops.http.tokens import TokenStore
from projections.migrate import migrate
from schemas.errors import LogUnavailableError, ValidationError
from schemas.events import Event, new_event, now_ms
from streams.kafka.log_reader import KafkaLogReader
from streams.sentinel.errors import TransitionError
from streams.sentinel.kafka_history import window_ranges
from streams.sentinel.lifecycle import (
    PolicyChange,
    RegistryState,
    apply_change,
    plan_create,
    plan_transition,
)
from streams.sentinel.policy import Policy, State
from streams.sentinel.simulation import Window
from tests import identity
from tests.integration.sentinel.api_helpers import serve

ACTIVE = {
    "id": "huge-transfers",
    "name": "Huge transfers",
    "severity": "HIGH",
    "scope": {"eventTypes": ["kernelAction"], "actions": ["payments.*"]},
    "rule": "context.amount > 9000",
    "effect": "deny",
    "rationale": "{actor} moved {context.amount}",
}
CANDIDATE = dict(
    ACTIVE,
    id="iran-transfers",
    name="Transfers to IR",
    rule='context.country == "IR" && context.amount > 100',
    rationale="{actor} sent {context.amount} to IR",
)


def run(kernel: Kernel, *argv: str) -> int:
    args = build_parser().parse_args(["policy", *argv])
    code: int = args.func(args, kernel)
    return code


def actions(n: int, start: int = 0) -> list[Event]:
    return [
        new_event(
            "kernelAction",
            f"agent:{i % 3}",
            f"acct:{i % 5}",
            {
                "action": "payments.transfer" if i % 4 else "payments.refund",
                "resource": "ledger",
                "context": {"amount": (i * 397) % 10_000, "country": ["FR", "IR", "DE"][i % 3]},
            },
        )
        for i in range(start, start + n)
    ]


def newly_denied(events: list[Event]) -> list[Event]:
    """What the candidate denies that the active set allows, computed independently."""
    return [
        e
        for e in events
        if e.body["context"]["country"] == "IR" and 100 < e.body["context"]["amount"] <= 9000
    ]


def end_offsets(kernel: Kernel) -> dict[str, int]:
    reader = kernel.log_reader()
    try:
        return {
            t: sum(reader.end_offset(t, p) for p in reader.partitions(t))
            for t in [*kernel.names.audited(), kernel.names.policy_checks]
        }
    finally:
        reader.close()


def report_events(kernel: Kernel) -> list[Event]:
    reader = KafkaLogReader(kernel.kafka, kernel.codec)
    try:
        return [
            r.event
            for r in reader.iter(kernel.names.policies, 0, 0)
            if r.event.event_type == "policySimulation"
        ]
    finally:
        reader.close()


def leaders_elected(kernel: Kernel) -> None:
    """New topics answer 'not leader' for a moment; wait until every partition has one."""
    deadline = time.monotonic() + 15
    while True:
        try:
            end_offsets(kernel)
            return
        except LogUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def history(kernel: Kernel) -> list[Event]:
    """The active policy taken through its lifecycle, the candidate created (a draft), and
    120 actions: one batch each (the CLI's path is ``test_policy_cli``'s)."""
    leaders_elected(kernel)
    state = RegistryState()
    changes = []

    def publish(change: PolicyChange) -> None:
        nonlocal state
        state = apply_change(state, change)
        changes.append(change.to_event())

    publish(plan_create(state, Policy.from_json(ACTIVE), "alice"))
    for to in (State.TEST, State.CANARY, State.ACTIVE):
        publish(plan_transition(state, "huge-transfers", 1, to, "bob", canary_percent=10))
    publish(plan_create(state, Policy.from_json(CANDIDATE), "alice"))
    events = actions(120)
    with kernel.producer() as producer:
        producer.publish_batch(changes)
        producer.publish_batch(events)
    return events


def test_the_report_counts_exactly_what_the_candidate_newly_denies(
    kernel: Kernel, history: list[Event], capsys: pytest.CaptureFixture[str]
) -> None:
    before = end_offsets(kernel)
    capsys.readouterr()
    assert run(kernel, "simulate", "iran-transfers", "--since", "1h", "--actor", "carol",
               "--json") == 0  # fmt: skip
    printed = json.loads(capsys.readouterr().out)
    report: dict[str, Any] = printed["body"]["report"]
    expected = newly_denied(history)
    assert report["eventsEvaluated"] == 120
    assert report["errors"] == 0
    assert report["candidateMatched"] == sum(
        1
        for e in history
        if e.body["context"]["country"] == "IR" and e.body["context"]["amount"] > 100
    )
    denied = report["changes"]["newlyDenied"]
    assert denied["count"] == len(expected) > 0
    for dim, key in (("byActor", "actor"), ("bySubject", "subject")):
        assert {x["key"]: x["count"] for x in denied[dim]["top"]} == Counter(
            getattr(e, key) for e in expected
        )
    assert {x["key"]: x["count"] for x in denied["byAction"]["top"]} == Counter(
        e.body["action"] for e in expected
    )
    assert report["changes"]["total"] == len(expected)
    assert report["changes"]["newlyAllowed"]["count"] == 0
    assert printed["body"]["activeSet"] == ["huge-transfers@1"]
    assert report["examples"] and all(e["path"] for e in report["examples"])

    # never enforces: not one policyCheck, and the report is the only record written
    after = end_offsets(kernel)
    assert after[kernel.names.policy_checks] == before[kernel.names.policy_checks] == 0
    assert {t: after[t] - before[t] for t in after if after[t] != before[t]} == {
        kernel.names.policies: 1
    }

    # the report event round-trips through the log, byte for byte the same body
    (on_log,) = report_events(kernel)
    assert on_log.event_id == printed["eventId"]
    assert on_log.to_json() == printed
    assert on_log.actor == "carol"
    assert on_log.subject == "iran-transfers"


def test_windows_are_bounded_and_bad_arguments_refused(
    kernel: Kernel, history: list[Event], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert run(kernel, "simulate", "iran-transfers@1", "--last", "31", "--actor", "c",
               "--json") == 0  # fmt: skip
    body = json.loads(capsys.readouterr().out)["body"]
    assert body["report"]["eventsEvaluated"] == 31
    assert run(kernel, "simulate", "iran-transfers", "--last", "31", "--actor", "c") == 0
    table = capsys.readouterr().out
    assert "events evaluated   31 (0 skipped)" in table
    denied = body["report"]["changes"]["newlyDenied"]["count"]
    assert f"newlyDenied: {denied}" in table if denied else "newlyDenied" not in table
    assert sum(e - s for s, e in body["ranges"].values()) == 31
    assert run(kernel, "simulate", "iran-transfers", "--from-offsets", "0:10,2:0", "--actor", "c",
               "--json") == 0  # fmt: skip
    body = json.loads(capsys.readouterr().out)["body"]
    ranges = body["ranges"]
    assert set(ranges) == {"0", "2"} and ranges["0"][0] == 10 and ranges["2"][0] == 0
    assert body["report"]["eventsEvaluated"] == sum(e - s for s, e in ranges.values())

    # --since: the first offsets at or after now - since, from Kafka's time index
    time.sleep(0.05)
    cut = now_ms()
    time.sleep(0.05)
    late = actions(9, start=1000)
    with kernel.producer() as producer:
        producer.publish_batch(late)
    ranges = window_ranges(kernel.offsets(), kernel.names.actions, Window(since_ms=60_000),
                           cut + 60_000)  # fmt: skip
    assert sum(e - s for s, e in ranges.values()) == 9
    everything = window_ranges(kernel.offsets(), kernel.names.actions, Window(since_ms=3_600_000),
                               now_ms())  # fmt: skip
    assert sum(e - s for s, e in everything.values()) == 129

    # bad arguments: a clear error, and nothing published
    with pytest.raises(ValidationError, match="no policy 'nope'"):
        run(kernel, "simulate", "nope", "--last", "5", "--actor", "c")
    with pytest.raises(ValidationError, match="has no v7"):
        run(kernel, "simulate", "iran-transfers@7", "--last", "5", "--actor", "c")
    with pytest.raises(ValidationError, match="only a draft or test version"):
        run(kernel, "simulate", "huge-transfers", "--last", "5", "--actor", "c")
    with pytest.raises(ValidationError, match="no partition 9"):
        run(kernel, "simulate", "iran-transfers", "--from-offsets", "9:0", "--actor", "c")
    assert len(report_events(kernel)) == 3  # the three above; none for a refused simulation
    capsys.readouterr()
    code = main(["policy", "simulate", "iran-transfers", "--since", "24x", "--actor", "c"])
    assert code == 2
    err = capsys.readouterr().err
    assert "kernel policy: error:" in err and "'24x' is not a duration" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["policy", "simulate", "iran-transfers", "--actor", "c"])
    assert exit_info.value.code == 2
    assert "one of the arguments --since --last --from-offsets is required" in (
        capsys.readouterr().err
    )


def test_reports_are_served_from_their_projection(
    db_kernel: Kernel, history: list[Event], capsys: pytest.CaptureFixture[str]
) -> None:
    migrate(db_kernel.settings.database_url)
    capsys.readouterr()
    assert run(db_kernel, "simulate", "iran-transfers", "--last", "40", "--actor", "carol",
               "--json") == 0  # fmt: skip
    printed = json.loads(capsys.readouterr().out)
    sid = printed["body"]["simulationId"]
    for _ in range(2):  # a replayed report lands on its row
        for runner in db_kernel.sentinel_projectors():
            runner.run_until_idle(idle_s=0.3)
            runner.close()
    author, _ = TokenStore(identity.TOKENS_FILE).create(f"author-{uuid.uuid4().hex[:6]}",
                                                        ["policy-author"])  # fmt: skip
    checker, _ = TokenStore(identity.TOKENS_FILE).create(f"checker-{uuid.uuid4().hex[:6]}",
                                                         ["checker"])  # fmt: skip

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        as_author = {"authorization": f"Bearer {author}"}
        as_checker = {"authorization": f"Bearer {checker}"}
        async with serve(build_app(db_kernel)) as c:
            out["one"] = (await c.get(f"/sentinel/simulations/{sid}")).json()
            mine = {"policyId": "iran-transfers"}
            out["list"] = (await c.get("/sentinel/simulations", params=mine)).json()
            other = {"policyId": "x"}
            out["none"] = (await c.get("/sentinel/simulations", params=other)).json()
            out["missing"] = (await c.get(f"/sentinel/simulations/{uuid.uuid4()}")).status_code
            out["bad"] = (await c.get("/sentinel/simulations/nope")).json()
            listed = await c.get("/sentinel/simulations", headers=as_checker)
            out["checker"] = listed.status_code
            shown = await c.get(f"/sentinel/simulations/{sid}", headers=as_author)
            out["author"] = shown.status_code
            out["paths"] = (await c.get("/openapi.json")).json()["paths"]
        return out

    out = asyncio.run(scenario())
    one = out["one"]
    assert one["report"] == printed["body"]["report"]
    assert (one["policyId"], one["version"], one["actor"]) == ("iran-transfers", 1, "carol")
    assert one["event"]["topic"] == db_kernel.names.policies
    assert one["eventId"] == printed["eventId"]
    (listed,) = out["list"]["simulations"]
    assert listed["simulationId"] == sid and listed["eventsEvaluated"] == 40
    assert listed["newlyDenied"] == printed["body"]["report"]["changes"]["newlyDenied"]["count"]
    assert out["none"] == {"simulations": []}
    assert out["missing"] == 404
    assert out["bad"]["field"] == "simulationId"
    assert out["checker"] == 403
    item = out["paths"]["/sentinel/simulations/{simulation_id}"]["get"]
    assert {"404", "422", "401", "403"} <= set(item["responses"])
    assert out["author"] == 200


@pytest.mark.slow
def test_two_processes_give_the_report_one_gives(
    kernel: Kernel, history: list[Event], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Through the CLI, spawned workers (the codec built from the settings in each)."""
    monkeypatch.setattr(kernel_history, "MIN_PER_WORKER", 10)
    reports = []
    for workers in ("1", "2"):
        capsys.readouterr()
        assert run(kernel, "simulate", "iran-transfers", "--last", "120", "--workers", workers,
                   "--actor", "c", "--json") == 0  # fmt: skip
        reports.append(json.loads(capsys.readouterr().out)["body"]["report"])
    assert reports[0] == reports[1]
    assert reports[0]["eventsEvaluated"] == 120


def test_the_history_gate_keeps_a_candidate_over_budget_out_of_canary(
    kernel: Kernel, history: list[Event], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12.2: before its canary, a version is simulated over recent history; over its
    newly-denied budget it never enters canary (only the report is published)."""
    strict = tmp_path / "strict.json"
    strict.write_text(json.dumps(dict(CANDIDATE, rollout={"minSample": 50})))
    benign = tmp_path / "benign.json"
    benign.write_text(json.dumps(dict(CANDIDATE, rule="context.amount > 99999",
                                      rollout={"minSample": 50})))  # fmt: skip
    for f in (strict, benign):
        assert run(kernel, "version", str(f), "--actor", "alice") == 0

    def to(version: str, state: str, *more: str) -> int:
        return run(kernel, "transition", "iran-transfers", version, state, *more, "--actor", "b")

    def shown() -> dict[str, Any]:
        capsys.readouterr()
        assert run(kernel, "show", "iran-transfers") == 0
        found: dict[str, Any] = json.loads(capsys.readouterr().out)
        return found

    assert to("2", "test") == 0
    reports = len(report_events(kernel))
    expected = len(newly_denied(history))
    with pytest.raises(TransitionError, match=f"history gate fail: {expected} newly denied of 120"):
        to("2", "canary", "--percent", "10")
    assert len(report_events(kernel)) == reports + 1  # the report is on the log
    assert [v["state"] for v in shown()["versions"]] == ["draft", "test", "draft"]

    assert to("2", "draft") == 0
    assert to("3", "test") == 0
    assert to("3", "canary", "--percent", "10") == 0
    after = shown()
    assert after["versions"][2]["state"] == "canary"
    assert "history gate pass: 0 newly denied of 120" in after["history"][-1]["reason"]
