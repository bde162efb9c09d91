"""Runner counters -> the Prometheus metrics of :mod:`ops.metrics`.

The runners keep cumulative counters and know nothing of Prometheus (domain
and runtime code never import the metrics library); a worker wires one of
these adapters in:

* :class:`TransactionalRunnerMetrics` is the ``on_batch`` callback of a
  :class:`~streams.kafka.transactional_runner.TransactionalRunner`. It gets the
  cumulative :class:`RunnerStats` after each committed batch and publishes the
  *difference* from the previous call. Aborts happen without a callback; they
  are counted at the next committed batch (or by calling :meth:`observe`
  again with ``runner.stats``), which is early enough for a rate.
* :class:`ProjectorMetrics` is called after each ``ProjectorRunner.poll_once``
  with the runner and the number of records the poll returned; a non-empty
  poll is one committed Postgres transaction (rows and checkpoint together).

Dead letters of a transactional runner are labelled by the category its
``RunnerStats.dead_by_reason`` gives (decode | step | encode | too_large |
produce; a label is a category, never the message, which is in the log); a
stats object without that split counts them all under ``dead_letter_reason``.
Its rewinds (consumer and state put back to the last commit) and producer
rebuilds (a transactional call past its deadline) are ``kernel_transactions``
results beside commit and abort, so the fault suite and alerts can see the
recovery path ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ops import metrics

__all__ = ["ProjectorMetrics", "ProjectorRunnerLike", "StatsLike", "TransactionalRunnerMetrics"]


class StatsLike(Protocol):
    """The fields of ``RunnerStats`` the adapter reads (all cumulative but last_batch)."""

    processed: int
    dead_letters: int
    commits: int
    aborts: int
    last_batch: int


class ProjectorRunnerLike(Protocol):
    """The counters of ``ProjectorRunner`` the adapter reads (cumulative)."""

    projected: int
    rejected: int


@dataclass
class _Seen:
    processed: int = 0
    failed: int = 0
    commits: int = 0
    aborts: int = 0
    rewinds: int = 0
    rebuilds: int = 0


class TransactionalRunnerMetrics:
    """``on_batch`` callback: publish what changed since the previous call."""

    def __init__(self, processor: str, *, dead_letter_reason: str = "processing") -> None:
        self.processor = processor
        self.reason = dead_letter_reason
        self._seen = _Seen()
        # Children created up front so every series starts at 0 and the first
        # failure is an increase PromQL can see.
        self._processed = metrics.EVENTS_PROCESSED.labels(processor)
        self._failed = metrics.EVENTS_FAILED.labels(processor)
        self._dead = metrics.DEAD_LETTERS.labels(processor, dead_letter_reason)
        self._batch = metrics.BATCH_SIZE.labels(processor)
        self._commits = metrics.TRANSACTIONS.labels(processor, "commit")
        self._aborts = metrics.TRANSACTIONS.labels(processor, "abort")
        self._rewinds = metrics.TRANSACTIONS.labels(processor, "rewind")
        self._rebuilds = metrics.TRANSACTIONS.labels(processor, "rebuild")
        self._dead_seen: dict[str, int] = {}

    def __call__(self, stats: StatsLike) -> None:
        self.observe(stats, batch=True)

    def observe(self, stats: StatsLike, *, batch: bool = False) -> None:
        seen = self._seen
        new = _Seen(
            stats.processed, stats.dead_letters, stats.commits, stats.aborts,
            getattr(stats, "rewinds", 0), getattr(stats, "rebuilds", 0),
        )  # fmt: skip
        self._processed.inc(max(0, new.processed - seen.processed))
        failed = max(0, new.failed - seen.failed)
        self._failed.inc(failed)
        by_reason: dict[str, int] = getattr(stats, "dead_by_reason", None) or {}
        split = 0
        for reason, count in by_reason.items():
            step = count - self._dead_seen.get(reason, 0)
            if step > 0:
                metrics.DEAD_LETTERS.labels(self.processor, reason).inc(step)
                split += step
        self._dead_seen = dict(by_reason)
        self._dead.inc(max(0, failed - split))  # what the stats did not categorise
        self._commits.inc(max(0, new.commits - seen.commits))
        self._aborts.inc(max(0, new.aborts - seen.aborts))
        self._rewinds.inc(max(0, new.rewinds - seen.rewinds))
        self._rebuilds.inc(max(0, new.rebuilds - seen.rebuilds))
        if batch and stats.last_batch > 0:
            self._batch.observe(stats.last_batch)
        self._seen = new


class ProjectorMetrics:
    """Call after every ``poll_once`` with the runner and what the poll returned."""

    def __init__(self, projection: str, *, clock: Callable[[], float] = time.time) -> None:
        self.projection = projection
        self._clock = clock
        self._projected = 0
        self._rejected = 0
        self._processed = metrics.EVENTS_PROCESSED.labels(projection)
        self._failed = metrics.EVENTS_FAILED.labels(projection)
        self._dead = metrics.DEAD_LETTERS.labels(projection, "decode")
        self._batch = metrics.BATCH_SIZE.labels(projection)
        self._commits = metrics.TRANSACTIONS.labels(projection, "commit")
        self._checkpoint = metrics.PROJECTION_CHECKPOINT_TIMESTAMP.labels(projection)

    def __call__(self, runner: ProjectorRunnerLike, polled: int) -> None:
        projected = max(0, runner.projected - self._projected)
        rejected = max(0, runner.rejected - self._rejected)
        self._projected, self._rejected = runner.projected, runner.rejected
        self._processed.inc(projected)
        self._failed.inc(rejected)
        # A projector rejects only records it cannot decode; it hands them to
        # on_reject, which the worker wires to the dead-letter topic.
        self._dead.inc(rejected)
        if polled > 0:
            self._batch.observe(polled)
            self._commits.inc()
            self._checkpoint.set(self._clock())
