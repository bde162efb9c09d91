"""Lag in seconds: from the record's timestamp, else interpolated from samples."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ops.lag.age import EndHistory, lag_seconds
from ops.lag.status import HeadProbe, Observation


def test_no_lag_is_zero_seconds() -> None:
    age = lag_seconds(Observation(100.0, 5, 5), EndHistory())
    assert (age.seconds, age.source) == (0.0, "none")


def test_timestamp_of_the_head_record_wins() -> None:
    obs = Observation(100.0, 5, 9, head=HeadProbe(5, 70.0))
    age = lag_seconds(obs, EndHistory())
    assert (age.seconds, age.source) == (30.0, "timestamp")


def test_interpolates_between_samples() -> None:
    ends = EndHistory()
    ends.add(0.0, 0)
    ends.add(10.0, 100)  # offsets 0..99 appended in (0, 10]
    age = lag_seconds(Observation(20.0, 49, 100), ends)
    assert age.source == "interpolated"
    assert abs(age.seconds - 15.0) < 1e-9  # offset 49 is the 50th of 100: t = 5


def test_older_than_every_sample_is_a_lower_bound() -> None:
    ends = EndHistory()
    ends.add(50.0, 100)
    ends.add(60.0, 200)
    age = lag_seconds(Observation(70.0, 10, 200), ends)
    assert (age.seconds, age.source) == (20.0, "lower-bound")


def test_quiet_period_keeps_its_last_sample() -> None:
    ends = EndHistory()
    for t in range(0, 100):
        ends.add(float(t), 10)  # nothing appended for 99 s
    ends.add(100.0, 11)  # offset 10 appended in (99, 100]
    assert len(ends.points) == 3
    found = ends.appended_at(10)
    assert found is not None
    assert found[0] == 100.0


def test_truncated_topic_forgets_history() -> None:
    ends = EndHistory()
    ends.add(0.0, 100)
    ends.add(1.0, 5)
    assert list(ends.points) == [(1.0, 5)]
    assert ends.appended_at(7) is None


def test_probe_that_found_nothing_is_zero() -> None:
    obs = Observation(9.0, 10, 11, last_stable=11, head=HeadProbe(None))
    assert lag_seconds(obs, EndHistory()).seconds == 0.0


@given(
    st.floats(0.5, 50.0),  # records per second
    st.floats(0.2, 3.0),  # sampling interval
    st.integers(5, 200),  # samples
    st.floats(0.0, 1.0),  # where the consumer stopped, as a fraction of the log
)
def test_interpolation_is_within_one_interval_of_truth(
    rate: float, interval: float, n: int, where: float
) -> None:
    # records appended at a steady rate: offset k at time k / rate
    ends = EndHistory()
    now = 0.0
    for i in range(n + 1):
        now = i * interval
        ends.add(now, int(now * rate))
    end = int(now * rate)
    committed = min(end - 1, int(where * end))
    if committed < int(rate * interval) + 1 or end == 0:
        return  # older than the first sample: covered by the lower-bound test
    truth = now - committed / rate
    age = lag_seconds(Observation(now, committed, end), ends)
    assert age.source == "interpolated"
    assert abs(age.seconds - truth) <= interval + 1 / rate
