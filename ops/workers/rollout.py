"""``kernel run rollout``: the canary gates, judged on every policyCheck, and their verdicts.

The composition root (:meth:`ops.bootstrap.Kernel.rollout`) wires
:class:`~streams.rollout.processor.RolloutProcessor`, inside :class:`MeteredRollout`,
into the exactly-once runner: the rollback or promotion a verdict calls for is
committed with the input offsets that led to it. The wrapper sets the gate
metrics from the step's verdicts (the processor stays free of metrics); a batch
whose transaction aborts is judged again, so a verdict can be counted twice:
the counters are rates, the policies topic is the record.

One instance (see the processor's docstring): the gates need all of a canary's
traffic.
"""

from __future__ import annotations

from collections.abc import Sequence

from ops import metrics
from streams.processor import InputRecord, LogReader, OutputRecord
from streams.rollout.controller import Action
from streams.rollout.gates import GATES
from streams.rollout.processor import RolloutProcessor, RolloutState

__all__ = ["MeteredRollout"]


class MeteredRollout:
    def __init__(self, inner: RolloutProcessor) -> None:
        self.inner = inner
        self.name = inner.name
        self.input_topics = inner.input_topics
        self.broadcast_topics = inner.broadcast_topics

    def recover(self, assigned: Sequence[tuple[str, int]], reader: LogReader) -> RolloutState:
        return self.inner.recover(assigned, reader)

    def absorb(self, state: RolloutState, record: InputRecord) -> RolloutState:
        return self.inner.absorb(state, record)

    def step(
        self, state: RolloutState, record: InputRecord
    ) -> tuple[RolloutState, Sequence[OutputRecord]]:
        state, outs = self.inner.step(state, record)
        for (policy_id, version), step in state.steps:
            label = f"{policy_id}@{version}"
            report = step.report
            metrics.CANARY_VERDICTS.labels(label, report.outcome.value).inc()
            metrics.CANARY_WINDOW_OBSERVATIONS.labels(label).set(report.sample)
            for gate in GATES:
                metrics.CANARY_GATE_VALUE.labels(label, gate).set(report.metrics[gate])
            if step.action is Action.ROLLBACK:
                metrics.CANARY_ROLLBACKS.labels(label, report.failures[0].gate).inc()
            elif step.action is Action.PROMOTE:
                metrics.CANARY_PROMOTIONS.labels(label).inc()
        return state, outs
