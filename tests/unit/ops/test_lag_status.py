"""The Burrow-style evaluator: each status, its precedence, and properties."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ops.lag.status import (
    HeadProbe,
    LagPolicy,
    Observation,
    PartitionHistory,
    Status,
    evaluate,
    group_status,
    lag_offsets,
)

POLICY = LagPolicy(window_s=10.0, stall_after_s=3.0, allowed_lag=0, min_samples=3)


def run(samples: list[tuple[float, int, int]], policy: LagPolicy = POLICY) -> PartitionHistory:
    h = PartitionHistory(policy)
    for ts, committed, end in samples:
        h.observe(Observation(ts, committed, end))
    return h


def test_caught_up_consumer_is_ok() -> None:
    h = run([(t, 10 * t, 10 * t) for t in range(20)])
    assert evaluate(h).status is Status.OK
    assert evaluate(h).lag == 0


def test_no_observations_is_ok() -> None:
    assert evaluate(PartitionHistory(POLICY)).status is Status.OK


def test_lag_rising_while_offsets_advance_is_warn() -> None:
    # producer +10/s, consumer +5/s: offsets move, lag grows every step
    h = run([(t, 5 * t, 10 * t + 1) for t in range(6)])
    result = evaluate(h)
    assert result.status is Status.WARN
    assert result.lag == 26


def test_steady_lag_is_ok_not_warn() -> None:
    h = run([(t, 10 * t, 10 * t + 4) for t in range(6)])
    assert evaluate(h).status is Status.OK


def test_stuck_offset_is_stall_then_stop() -> None:
    samples = [(float(t), 100, 100 + 10 * t) for t in range(1, 16)]
    statuses = []
    h = PartitionHistory(POLICY)
    for ts, c, e in samples:
        h.observe(Observation(ts, c, e))
        statuses.append(evaluate(h).status)
    # stuck since t=1: STALL from t=4 (3 s), STOP after t=11 (> 10 s window)
    assert statuses[:3] == [Status.OK] * 3
    assert statuses[3:11] == [Status.STALL] * 8
    assert statuses[11:] == [Status.STOP] * 4


def test_idle_consumer_without_lag_never_stalls_and_restarts_the_clock() -> None:
    # nothing to read for a long time, then one record arrives: not STOP at once
    h = run([(float(t), 50, 50) for t in range(100)])
    assert evaluate(h).status is Status.OK
    h.observe(Observation(100.0, 50, 51))
    assert evaluate(h).status is Status.OK
    assert evaluate(h).stuck_for_s == 0.0


def test_allowed_lag_tolerates_small_lag() -> None:
    policy = LagPolicy(window_s=10.0, stall_after_s=3.0, allowed_lag=5)
    h = run([(float(t), 100, 105) for t in range(30)], policy)
    assert evaluate(h).status is Status.OK


def test_catching_up_returns_to_ok() -> None:
    h = run([(float(t), 100, 200) for t in range(15)])
    assert evaluate(h).status is Status.STOP
    h.observe(Observation(15.0, 200, 200))
    assert evaluate(h).status is Status.OK


def test_backwards_commit_is_rewind_while_in_window() -> None:
    h = run([(0.0, 100, 100), (1.0, 100, 100), (2.0, 20, 100)])
    assert evaluate(h).status is Status.REWIND
    # the consumer resumes and re-reads; the rewind stays visible for one window
    for t in range(3, 12):
        h.observe(Observation(float(t), 20 + 9 * (t - 2), 100 + t))
    assert evaluate(h).status is Status.REWIND
    h.observe(Observation(13.0, 113, 113))
    assert evaluate(h).status is Status.OK


def test_transaction_marker_is_not_lag() -> None:
    # committed 10, LSO 11, the probe finds nothing visible: a marker, lag 0
    obs = Observation(0.0, 10, 11, last_stable=11, head=HeadProbe(None))
    assert lag_offsets(obs) == 0
    h = PartitionHistory(POLICY)
    for t in range(30):
        h.observe(Observation(float(t), 10, 11, last_stable=11, head=HeadProbe(None)))
    assert evaluate(h).status is Status.OK


def test_open_transaction_counts_only_to_last_stable_offset() -> None:
    assert lag_offsets(Observation(0.0, 10, log_end=50, last_stable=12)) == 2
    assert lag_offsets(Observation(0.0, 10, log_end=50)) == 40


def test_head_probe_past_markers_counts_from_the_visible_record() -> None:
    obs = Observation(0.0, 10, 20, last_stable=20, head=HeadProbe(12, 1.0))
    assert lag_offsets(obs) == 8


def test_out_of_order_observation_is_refused() -> None:
    h = run([(5.0, 1, 1)])
    with pytest.raises(ValueError, match="older"):
        h.observe(Observation(4.0, 1, 1))


@pytest.mark.parametrize(
    ("window", "stall", "allowed", "samples"),
    [(10, 0, 0, 3), (10, 11, 0, 3), (10, 3, -1, 3), (10, 3, 0, 1)],
)
def test_policy_rejects_nonsense(window: float, stall: float, allowed: int, samples: int) -> None:
    with pytest.raises(ValueError, match="LagPolicy"):
        LagPolicy(window, stall, allowed, samples)


def test_group_is_its_worst_partition() -> None:
    assert group_status([Status.OK, Status.STALL, Status.WARN]) is Status.STALL
    assert group_status([]) is Status.OK
    assert Status.OK < Status.WARN < Status.REWIND < Status.STALL < Status.STOP


# -- properties -----------------------------------------------------------

steps = st.lists(
    st.tuples(
        st.floats(0.1, 5.0), st.integers(-20, 50), st.integers(0, 50)
    ),  # (dt, commit step, produce step)
    min_size=1,
    max_size=60,
)


def _walk(seq: list[tuple[float, int, int]], policy: LagPolicy = POLICY) -> list[Observation]:
    ts, committed, end, out = 0.0, 0, 0, []
    for dt, dc, de in seq:
        ts += dt
        end += de
        committed = min(max(0, committed + dc), end)
        out.append(Observation(ts, committed, end))
    return out


@given(steps)
def test_lag_is_never_negative_and_status_is_defined(seq: list[tuple[float, int, int]]) -> None:
    h = PartitionHistory(POLICY)
    for obs in _walk(seq):
        h.observe(obs)
        result = evaluate(h)
        assert result.lag >= 0
        assert result.status in Status
        assert h.window[0].ts >= obs.ts - POLICY.window_s or len(h.window) == 1


@given(steps)
def test_a_backwards_step_in_the_window_is_at_least_rewind(
    seq: list[tuple[float, int, int]],
) -> None:
    h = PartitionHistory(POLICY)
    for obs in _walk(seq):
        h.observe(obs)
    window = list(h.window)
    went_back = any(b.committed < a.committed for a, b in itertools.pairwise(window))
    status = evaluate(h).status
    if went_back:
        assert status >= Status.REWIND
    else:
        assert status is not Status.REWIND


@given(steps)
def test_zero_lag_is_always_ok(seq: list[tuple[float, int, int]]) -> None:
    h = PartitionHistory(POLICY)
    for obs in _walk(seq):
        h.observe(obs)
    last = h.window[-1]
    h.observe(Observation(last.ts + 1.0, last.log_end, last.log_end))
    if not any(b.committed < a.committed for a, b in itertools.pairwise(h.window)):
        assert evaluate(h).status is Status.OK


@given(st.floats(0.1, 2.0), st.integers(2, 80))
def test_stuck_consumer_reaches_stop_within_two_windows(dt: float, n: int) -> None:
    h = PartitionHistory(POLICY)
    ts = 0.0
    first_stop = None
    for i in range(n + int(2 * POLICY.window_s / dt) + 2):
        ts += dt
        h.observe(Observation(ts, 7, 8 + i))
        if evaluate(h).status is Status.STOP and first_stop is None:
            first_stop = ts
    assert first_stop is not None
    assert first_stop - dt <= 2 * POLICY.window_s
