"""Canary gates and the controller, as properties over generated traffic."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.errors import ValidationError
from streams.rollout.controller import Action, CanaryController
from streams.rollout.gates import (
    LATENCY_BOUNDS_MS,
    Observation,
    Outcome,
    Tally,
    Thresholds,
    history_gate,
    judge,
)

SMALL = Thresholds(min_sample=20, window_s=60, promote_after_s=120, consecutive_failures=2)

observations = st.builds(
    Observation,
    ts=st.just(0.0),
    candidate_denies=st.booleans(),
    active_denies=st.booleans(),
    error=st.booleans(),
    latency_ms=st.floats(0, 50, allow_nan=False),
    fallback=st.booleans(),
)


def _window(items: list[Observation]) -> Tally:
    tally = Tally(60)
    for i, o in enumerate(items):
        tally = tally.add(Observation(i * 0.01, *_fields(o)))
    return tally


def _fields(o: Observation) -> tuple[bool, bool, bool, float, bool]:
    return (o.candidate_denies, o.active_denies, o.error, o.latency_ms, o.fallback)


def _reference(items: list[Observation], t: Thresholds) -> set[str]:
    """The failing gates, computed independently of the module's metrics."""
    n = len(items)
    denies = [o.candidate_denies for o in items]
    active = [o.active_denies for o in items]
    # nearest rank, 1-based, reported as the upper bound of its histogram bucket
    latencies = sorted(o.latency_ms for o in items)
    rank = math.ceil(0.99 * n)
    p99 = min(b for b in LATENCY_BOUNDS_MS if latencies[rank - 1] <= b)
    failing = set()
    if sum(a != b for a, b in zip(denies, active, strict=True)) > t.max_disagreement * n:
        failing.add("disagreement")
    if abs(sum(denies) - sum(active)) > t.max_deny_rate_change * n:
        failing.add("deny_rate_change")
    if sum(o.error for o in items) > t.max_error_rate * n:
        failing.add("error_rate")
    if p99 > t.max_p99_latency_ms:
        failing.add("p99_latency")
    if sum(o.fallback for o in items) > t.max_fallbacks:
        failing.add("fallbacks")
    return failing


@settings(max_examples=200, deadline=None)
@given(st.lists(observations, max_size=60), st.integers(1, 40))
def test_a_window_fails_exactly_the_gates_over_their_thresholds(
    items: list[Observation], min_sample: int
) -> None:
    thresholds = Thresholds(min_sample=min_sample, max_disagreement=0.3, max_error_rate=0.2)
    report = judge(_window(items), thresholds)
    assert report.sample == len(items)
    if len(items) < min_sample:
        assert report.outcome is Outcome.INCONCLUSIVE
        assert report.failures == ()
        return
    expected = _reference(items, thresholds)
    assert {f.gate for f in report.failures} == expected
    assert report.outcome is (Outcome.FAIL if expected else Outcome.PASS)
    for failure in report.failures:
        assert failure.value > failure.threshold


def test_the_window_forgets_what_is_older_than_its_span() -> None:
    tally = Tally(10)
    for ts in (0.0, 5.0, 10.0, 14.5):
        tally = tally.add(Observation(ts, False, False))
    assert [i for i, _ in tally.buckets] == [5, 10, 14]  # per-second buckets
    assert tally.total().n == 3
    assert tally.expire(25.0).total().n == 0
    before = tally
    tally.add(Observation(15.0, True, False))
    assert before.total().n == 3  # immutable: add made a new tally


@given(
    st.lists(st.floats(0, 1000, allow_nan=False), max_size=80),
    st.integers(1, 120),
    st.randoms(use_true_random=False),
)
def test_the_tally_counts_exactly_the_observations_inside_the_span(
    times: list[float], span: int, rng: random.Random
) -> None:
    arrival = list(times)
    rng.shuffle(arrival)  # checks of several partitions arrive out of time order
    tally = Tally(span)
    for ts in arrival:
        tally = tally.add(Observation(ts, True, False))
    if not times:
        return
    buckets = [b for b, _ in tally.buckets]
    assert buckets == sorted(set(buckets))
    assert len(tally.buckets) <= span + 2
    # whole seconds: an observation counts while its second is inside the span as of
    # the newest one; arriving late (after its second fell out) it is dropped
    now = max(times)
    inside = [t for t in times if math.floor(t) + 1 > now - span]
    if arrival == sorted(arrival):
        assert tally.total().n == len(inside)
    assert tally.total().n <= len(times)
    assert all(b >= math.floor(now) - span - 1 for b in buckets)
    assert tally.buckets[-1][0] == math.floor(now)


def _run(controller: CanaryController, seconds: int, per_s: int, deny: bool) -> list[Action]:
    steps = []
    for i in range(seconds * per_s):
        step = controller.observe(Observation(i / per_s, deny, False, latency_ms=0.1))
        if step is not None:
            steps.append(step.action)
    return steps


def test_a_canary_that_denies_too_much_is_rolled_back_naming_the_gate() -> None:
    controller = CanaryController("LOW", SMALL)
    step = None
    for i in range(10_000):
        step = controller.observe(Observation(i / 10, candidate_denies=True, active_denies=False))
        if step is not None and step.action is Action.ROLLBACK:
            break
    assert step is not None and step.action is Action.ROLLBACK
    assert {f.gate for f in step.report.failures} == {"disagreement", "deny_rate_change"}
    assert step.report.metrics["deny_rate_delta"] == 1.0
    assert "disagreement 1 > 0.05" in step.reason
    assert step.consecutive_failures == SMALL.consecutive_failures
    assert controller.observe(Observation(99_999, True, False)) is None  # finished


def test_a_canary_with_too_little_traffic_is_never_promoted() -> None:
    controller = CanaryController("LOW", SMALL)
    # one observation every 5 s: a 60 s window holds 12 < min_sample 20
    steps = [controller.observe(Observation(ts, False, False)) for ts in range(0, 100_000, 5)]
    taken = [s for s in steps if s is not None]
    assert len(taken) > 1000
    assert {s.action for s in taken} == {Action.HOLD}
    assert {s.report.outcome for s in taken} == {Outcome.INCONCLUSIVE}
    assert controller.passing_s == 0


def test_passing_gates_promote_a_low_policy_and_hold_a_high_one_for_approval() -> None:
    low = _run(CanaryController("LOW", SMALL), seconds=400, per_s=10, deny=False)
    assert low[-1] is Action.PROMOTE and low.count(Action.PROMOTE) == 1
    high = _run(CanaryController("HIGH", SMALL), seconds=400, per_s=10, deny=False)
    assert Action.PROMOTE not in high and Action.AWAITING_APPROVAL in high


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list(Outcome)), max_size=40), st.integers(1, 5))
def test_rollback_comes_exactly_after_k_consecutive_failures(
    outcomes: list[Outcome], k: int
) -> None:
    thresholds = Thresholds(min_sample=10, window_s=10, consecutive_failures=k,
                            promote_after_s=10**9)  # fmt: skip
    controller = CanaryController("LOW", thresholds, step_s=10)
    ts, streak = 0.0, 0
    for outcome in outcomes:
        count = 0 if outcome is Outcome.INCONCLUSIVE else 20
        deny = outcome is Outcome.FAIL
        step = None
        for j in range(count):
            ts += 10 / (count + 1)
            controller.observe(Observation(ts, deny, False))
            _ = j
        ts = math.floor(ts / 10) * 10 + 10
        step = controller.tick(ts)
        streak = (
            streak + 1 if outcome is Outcome.FAIL else (0 if outcome is Outcome.PASS else streak)
        )
        assert step.report.outcome is outcome
        assert (step.action is Action.ROLLBACK) == (streak >= k)
        if step.action is Action.ROLLBACK:
            return


def test_history_gate_keeps_a_candidate_over_budget_out_of_canary() -> None:
    t = Thresholds(min_sample=100, history_newly_denied_budget=0.01)
    assert history_gate(1000, 10, t).outcome is Outcome.PASS
    failed = history_gate(1000, 11, t)
    assert failed.outcome is Outcome.FAIL
    assert failed.failures[0].gate == "history_newly_denied"
    assert history_gate(99, 0, t).outcome is Outcome.INCONCLUSIVE


def test_thresholds_from_a_policy_spec() -> None:
    t = Thresholds.from_spec({"maxDisagreement": 0.1, "minSample": 50, "windowS": 30})
    assert (t.max_disagreement, t.min_sample, t.window_s) == (0.1, 50, 30.0)
    assert Thresholds.from_spec(None) == Thresholds()
    assert Thresholds.from_spec(t.to_json()) == t
    with pytest.raises(ValidationError, match=r"rollout\.maxDisagrement: unknown setting"):
        Thresholds.from_spec({"maxDisagrement": 0.1})
    with pytest.raises(ValidationError, match=r"rollout\.minSample: must be a whole number"):
        Thresholds.from_spec({"minSample": 2.5})
    with pytest.raises(ValidationError, match="max_error_rate: must be a share"):
        Thresholds.from_spec({"maxErrorRate": 2})
    with pytest.raises(ValidationError, match="must be a number"):
        Thresholds.from_spec({"windowS": "5m"})
