"""``kernel run sentinel``: streaming SentinelNet evaluation of every kernel action.

The composition root (:meth:`ops.bootstrap.Kernel.sentinel`) wires
:class:`~streams.sentinel.stream.SentinelProcessor`, inside :class:`MeteredSentinel`,
into the exactly-once
:class:`~streams.kafka.transactional_runner.TransactionalRunner`. The runner's
counters go to Prometheus through ``TransactionalRunnerMetrics``; decisions are
counted by a thin wrapper around ``step`` (the processor itself stays free of
metrics). A batch whose transaction aborts is re-processed, so its decisions
can be counted twice: the counter is a rate for dashboards, the log is the record.

Instances scale out: the actions partitions are shared by the consumer group
(``kernel run sentinel --instance N``), while the policies topic is a broadcast
input every instance reads in full (``SentinelProcessor.broadcast_topics``), so
each instance sees every policy change.
"""

from __future__ import annotations

from collections.abc import Sequence

from ops import metrics
from streams.processor import InputRecord, LogReader, OutputRecord
from streams.sentinel.stream import SentinelProcessor, SentinelState

__all__ = ["MeteredSentinel"]


class MeteredSentinel:
    """The processor, counting each emitted decision in ``kernel_decisions``."""

    def __init__(self, inner: SentinelProcessor) -> None:
        self.inner = inner
        self.name = inner.name
        self.input_topics = inner.input_topics
        self.broadcast_topics = inner.broadcast_topics

    def recover(self, assigned: Sequence[tuple[str, int]], reader: LogReader) -> SentinelState:
        return self.inner.recover(assigned, reader)

    def absorb(self, state: SentinelState, record: InputRecord) -> SentinelState:
        return self.inner.absorb(state, record)

    def step(
        self, state: SentinelState, record: InputRecord
    ) -> tuple[SentinelState, Sequence[OutputRecord]]:
        state, outs = self.inner.step(state, record)
        for out in outs:
            body = out.event.body
            mode = "simulated" if body["simMode"] else "enforced"
            metrics.DECISIONS.labels(body["decision"], body["policyId"] or "none", mode).inc()
        return state, outs
