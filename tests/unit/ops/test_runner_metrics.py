"""The runner-metrics adapter publishes deltas of cumulative runner counters."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from prometheus_client import REGISTRY

from ops.runner_metrics import ProjectorMetrics, TransactionalRunnerMetrics
from streams.kafka.transactional_runner import RunnerStats


def _value(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _name() -> str:
    return f"p{uuid.uuid4().hex[:8]}"


def test_series_exist_at_zero_before_the_first_batch() -> None:
    proc = _name()
    TransactionalRunnerMetrics(proc)
    assert REGISTRY.get_sample_value("kernel_events_failed_total", {"processor": proc}) == 0.0
    assert (
        REGISTRY.get_sample_value(
            "kernel_transactions_total", {"processor": proc, "result": "abort"}
        )
        == 0.0
    )


def test_transactional_runner_stats_become_counter_increments() -> None:
    proc = _name()
    on_batch = TransactionalRunnerMetrics(proc)
    stats = RunnerStats()
    stats.processed, stats.dead_letters, stats.commits, stats.last_batch = 10, 2, 1, 12
    on_batch(stats)
    stats.aborts += 1  # an aborted batch: no callback of its own
    stats.processed, stats.commits, stats.last_batch = 15, 2, 5
    on_batch(stats)

    assert _value("kernel_events_processed_total", processor=proc) == 15
    assert _value("kernel_events_failed_total", processor=proc) == 2
    assert _value("kernel_dead_letters_total", processor=proc, reason="processing") == 2
    assert _value("kernel_transactions_total", processor=proc, result="commit") == 2
    assert _value("kernel_transactions_total", processor=proc, result="abort") == 1
    assert _value("kernel_batch_size_count", processor=proc) == 2
    assert _value("kernel_batch_size_sum", processor=proc) == 17


def test_dead_letters_by_category_rewinds_and_rebuilds_are_exported() -> None:
    proc = _name()
    on_batch = TransactionalRunnerMetrics(proc)
    stats = RunnerStats(processed=5, dead_letters=3, commits=1, last_batch=8)
    stats.dead_by_reason = {"decode": 1, "too_large": 2}
    on_batch(stats)
    stats.rewinds, stats.rebuilds, stats.aborts = 2, 1, 2
    stats.dead_letters, stats.commits = 4, 2
    stats.dead_by_reason = {"decode": 1, "too_large": 2, "step": 1}
    on_batch(stats)
    assert _value("kernel_dead_letters_total", processor=proc, reason="decode") == 1
    assert _value("kernel_dead_letters_total", processor=proc, reason="too_large") == 2
    assert _value("kernel_dead_letters_total", processor=proc, reason="step") == 1
    assert _value("kernel_dead_letters_total", processor=proc, reason="processing") == 0
    assert _value("kernel_events_failed_total", processor=proc) == 4
    assert _value("kernel_transactions_total", processor=proc, result="rewind") == 2
    assert _value("kernel_transactions_total", processor=proc, result="rebuild") == 1
    assert _value("kernel_transactions_total", processor=proc, result="abort") == 2


def test_repeating_the_same_stats_adds_nothing() -> None:
    proc = _name()
    on_batch = TransactionalRunnerMetrics(proc)
    stats = RunnerStats(processed=3, commits=1, last_batch=3)
    on_batch(stats)
    on_batch.observe(stats)  # e.g. called again at shutdown
    assert _value("kernel_events_processed_total", processor=proc) == 3
    assert _value("kernel_transactions_total", processor=proc, result="commit") == 1
    assert _value("kernel_batch_size_count", processor=proc) == 1


@dataclass
class FakeProjector:
    projected: int = 0
    rejected: int = 0


def test_projector_counters_batches_and_checkpoint_time() -> None:
    name = _name()
    after_poll = ProjectorMetrics(name, clock=lambda: 1234.5)
    runner = FakeProjector()
    after_poll(runner, 0)  # an empty poll: no transaction
    assert _value("kernel_transactions_total", processor=name, result="commit") == 0
    assert (
        REGISTRY.get_sample_value(
            "kernel_projection_checkpoint_timestamp_seconds", {"projection": name}
        )
        == 0.0
    )
    runner.projected, runner.rejected = 7, 1
    after_poll(runner, 8)
    runner.projected = 9
    after_poll(runner, 2)

    assert _value("kernel_events_processed_total", processor=name) == 9
    assert _value("kernel_events_failed_total", processor=name) == 1
    assert _value("kernel_dead_letters_total", processor=name, reason="decode") == 1
    assert _value("kernel_transactions_total", processor=name, result="commit") == 2
    assert _value("kernel_batch_size_sum", processor=name) == 10
    assert _value("kernel_projection_checkpoint_timestamp_seconds", projection=name) == 1234.5
