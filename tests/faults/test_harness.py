"""The harness's own verdicts, on made-up timelines and ledgers (no I/O, fast).

A fault suite whose accounting cannot fail proves nothing: these show that a
duplicate, a loss, a worker that never came back and an exit 0 nobody asked
for each turn the verdict to FAIL.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, cast

from prometheus_client import generate_latest

from ops import metrics
from ops.bootstrap import Kernel
from schemas.topics import TopicNames
from streams.chain.links import chain_id
from streams.chain.signer import chain_partition
from tests.faults.conftest import spread_prefix
from tests.faults.ledger import tally
from tests.faults.progress import Arrivals, Progress, Sample
from tests.faults.report import table, verdict
from tests.faults.run import SCALED, RunResult
from tests.faults.schedule import CI, FULL, WORKERS, schedule
from tests.faults.scrape import WorkerMetrics, aborts_in
from tests.faults.supervisor import Exit


class _Names:
    names = TopicNames("x.")


def _progress(samples: list[Sample]) -> Progress:
    p = Progress(cast(Kernel, _Names()))
    p.samples = samples
    return p


def _sample(at: float, a: int, b: int, end_a: int = 100, end_b: int = 100) -> Sample:
    return Sample(
        at,
        {("signer", "x.actions", 0): a, ("signer", "x.actions", 1): b},
        {("x.actions", 0): end_a, ("x.actions", 1): end_b},
    )


def _work(a: list[int], b: list[int]) -> Arrivals:
    return Arrivals({("x.actions", 0): a, ("x.actions", 1): b})


def test_served_again_waits_for_every_partition_with_work() -> None:
    p = _progress([_sample(9, 5, 5), _sample(10.2, 5, 5), _sample(14, 6, 5), _sample(17, 6, 8)])
    assert p.served_again("signer", 10.0, _work([5], [5, 6])) == 7.0


def test_a_partition_with_work_that_never_moves_is_never_served() -> None:
    p = _progress([_sample(10.2, 5, 5), _sample(14, 6, 5), _sample(17, 7, 5)])
    assert p.served_again("signer", 10.0, _work([6], [5])) is None


def test_offsets_without_committed_records_are_not_work() -> None:
    # partition 1's end moved (aborted batches, markers) but no committed record is past 5
    p = _progress(
        [_sample(9, 5, 5, end_b=9), _sample(10.2, 5, 5, end_b=9), _sample(14, 6, 5, end_b=9)]
    )
    assert p.served_again("signer", 10.0, _work([5], [2, 4])) == 4.0


def test_work_that_becomes_visible_late_is_timed_from_then() -> None:
    samples = [_sample(9, 5, 5, end_b=5), _sample(29, 5, 5, end_b=7), _sample(31, 6, 6)]
    p = _progress(samples)
    assert p.served_again("signer", 10.0, _work([5], [5])) == 21.0  # a: visible before t0
    assert p.served_again("signer", 10.0, _work([], [5])) == 2.0  # b: visible at 29, moved 31


def _check(eid: str, subject: str, *, sim: bool = False, cid: str | None = None) -> Any:
    body = {"policyCheckId": cid or f"c-{eid}", "mode": "stream", "simMode": sim,
            "subjectEventId": subject}  # fmt: skip
    return (eid, body)


def test_the_ledger_counts_losses_and_duplicates() -> None:
    actions = Counter({"a1": 1, "a2": 1, "a3": 1})
    checks = [_check("k1", "a1"), _check("k2", "a2"), _check("k2b", "a2", cid="c-k2"),
              _check("k3", "a3", sim=True)]  # fmt: skip
    audit = Counter({"a1": 1, "a2": 2, "k1": 1, "k2": 1, "k2b": 1, "k3": 1})
    table_ids = {"c-k1", "c-k2", "c-k3"}
    led = tally(actions, checks, audit, table_ids, ["a1", "a2", "a3", "a4"], ["u1"], {"r": "c-x"})
    assert led.lost_at_door == ["a4"]
    assert led.audit_missing == ["a3"]
    assert led.audit_duplicated == ["a2"]
    assert led.decided_twice == ["a2"]  # two enforced stream decisions on the log
    assert led.undecided == ["a3"]  # a simulated check is not the decision
    assert led.check_ids_repeated == ["c-k2"]
    assert led.sync_missing == ["c-x"]
    assert led.missing == 4 and led.duplicated == 3


def test_a_clean_ledger_is_zero() -> None:
    led = tally(Counter({"a1": 1}), [_check("k1", "a1")], Counter({"a1": 1, "k1": 1}),
                {"c-k1"}, ["a1"], [], {})  # fmt: skip
    assert (led.missing, led.duplicated) == (0, 0)


def _clean_result() -> RunResult:
    r = RunResult(FULL)  # the plan that holds recovery to its bounds
    r.ledger = tally(Counter({"a1": 1}), [_check("k1", "a1")], Counter({"a1": 1, "k1": 1}),
                     {"c-k1"}, ["a1"], [], {})  # fmt: skip
    r.verify = {"audit-verify": (0, "verified")}
    r.aborts = 1
    r.final_drain_s = 3.0
    r.broker_recovery = {"broker-kill9": 12.0}
    r.recovery = {"signer": [5.0, 9.0]}
    r.processed = {f"{w}#{i}": 10 for w in SCALED for i in ("0", "1")}
    r.verifications = {"auditor#0": {"ok": 3}, "auditor#1": {"ok": 2}}
    return r


def test_a_clean_run_passes_and_each_broken_promise_fails_it() -> None:
    assert verdict(_clean_result()) == []
    assert "VERDICT" in table(_clean_result())
    broken = []
    r = _clean_result()
    r.exits = [Exit("signer", "1", 0, False, 3.0, 1.0, "fenced")]
    broken.append(r)
    r = _clean_result()
    r.aborts = 0
    broken.append(r)
    r = _clean_result()
    r.verify["replay"] = (1, "differs")
    broken.append(r)
    r = _clean_result()
    r.broker_recovery["broker-graceful"] = None
    broken.append(r)
    r = _clean_result()
    r.recovery["sentinel"] = [r.plan.kill_bound_s + 1]
    broken.append(r)
    r = _clean_result()
    r.final_drain_s = None
    broken.append(r)
    r = _clean_result()
    r.processed["checkpointer#1"] = 0  # the second instance never got a partition
    broken.append(r)
    r = _clean_result()
    r.verifications["auditor#1"] = {"ok": 5, "failed": 1}
    broken.append(r)
    r = _clean_result()
    r.verifications = {}
    broken.append(r)
    for r in broken:
        assert len(verdict(r)) == 1, verdict(r)


def test_an_asked_exit_is_not_a_finding() -> None:
    r = _clean_result()
    r.exits = [Exit("signer", "0", -9, True, 3.0, 1.0), Exit("api", "0", 0, True, 9.0, 2.0)]
    assert verdict(r) == []


def test_every_worker_type_is_killed_and_the_full_run_kills_at_least_50() -> None:
    for plan, least in ((CI, 10), (FULL, 50)):
        kills = [f.target for f in schedule(plan) if f.kind == "kill9"]
        assert len(kills) >= least and set(kills) == set(WORKERS)
        kinds = {f.kind for f in schedule(plan)}
        assert {"broker-kill9", "broker-graceful", "pg-outage", "scale-out", "scale-in"} <= kinds


def test_aborts_are_read_from_the_runners_own_metric() -> None:
    before = aborts_in(generate_latest().decode()).get("faults-harness-test", 0.0)
    metrics.TRANSACTIONS.labels("faults-harness-test", "commit").inc(5)
    metrics.TRANSACTIONS.labels("faults-harness-test", "abort").inc(2)
    assert aborts_in(generate_latest().decode())["faults-harness-test"] == before + 2


def test_the_ci_form_reports_recovery_past_its_bounds_without_failing_on_it() -> None:
    r = _clean_result()
    r.plan = CI
    r.broker_recovery = {"broker-kill9": None}
    assert verdict(r) == []
    assert "broker-kill9: not every worker processing again" in table(r)
    r.ledger = None
    assert verdict(r) == ["the end checks did not run"]


def test_processed_and_verifications_are_summed_per_instance_over_its_starts() -> None:
    m = WorkerMetrics(lambda: [])
    m.processed = {"signer#1/1": 40.0, "signer#1/2": 2.0, "signer#0/1": 7.0}
    m.verifications = {("auditor#0/1", "ok"): 3.0, ("auditor#0/2", "ok"): 1.0}
    assert m.processed_by_instance() == {"signer#1": 42, "signer#0": 7}
    assert m.verifications_by_instance() == {"auditor#0": {"ok": 4}}


def test_the_runs_prefix_puts_a_busy_chain_on_every_chain_partition() -> None:
    prefix = spread_prefix()
    used = {
        chain_partition(chain_id(f"{prefix}{topic}", p), 3)
        for topic in ("actions", "policy-checks")
        for p in range(3)
    }
    assert used == {0, 1, 2}
