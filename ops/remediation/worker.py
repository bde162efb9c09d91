"""The remediation worker: the machine's decisions, the actions' effects, on one log.

A :class:`~streams.processor.Processor` for the transactional runner, over the
policy-checks topic (``remediate`` decisions become ``requested``) and the
remediations topic (its own steps and the operators'). Exactly-once is
built from three facts:

1. ``started`` is committed before the action runs: it is an output of the
   transaction that consumed the approval, and the action runs only when the
   worker consumes ``started`` back -- so every ``applied`` has a ``started``
   before it on the log.
2. ``applied``/``failed`` is committed in the same transaction as the
   ``started`` offset: a crash in between leaves ``started`` unconsumed, and
   the restarted worker calls the webhook again with the same
   ``Idempotency-Key`` -- the receiver deduplicates, the effect happens once.
3. :meth:`RemediationWorker.recover` folds the *whole* remediations topic, so
   a ``started`` whose outcome is already on the log is never executed again
   (a reset group, a replay of the topic, a redelivery after an abort).

The ``quarantine`` action needs no such care: its ``kernelAction`` is an
output of the same transaction as ``applied``. The runner is built with one
record per transaction (:meth:`ops.bootstrap.Kernel.remediation`), so a call
is never inside an open broker transaction and an abort re-sends nothing
but the one call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ops import metrics
from schemas.events import Event
from schemas.topics import TopicNames
from streams.processor import InputRecord, LogReader, OutputRecord
from streams.remediation.actions import ActionSpec
from streams.remediation.machine import (
    Remediation,
    RemediationBook,
    finish,
    observe,
    on_policy_check,
    react,
)
from streams.remediation.quarantine import quarantine_event

__all__ = ["ActionRunner", "Outcome", "QuarantineRunner", "RemediationWorker", "WebhookRunner"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    details: dict[str, Any]
    events: Sequence[Event] = ()  # written in the transaction of applied


class ActionRunner(Protocol):
    def run(self, item: Remediation, ts_ms: int) -> Outcome: ...


class Deliverer(Protocol):
    def deliver(self, payload: dict[str, Any], idempotency_key: str) -> Any: ...


class WebhookRunner:
    def __init__(self, webhook: Deliverer) -> None:
        self.webhook = webhook

    def run(self, item: Remediation, ts_ms: int) -> Outcome:
        payload = {
            "remediationId": item.remediation_id,
            "idempotencyKey": item.key,
            "action": item.action,
            "subject": item.subject,
            "policyCheckId": item.policy_check_id,
            "reason": item.reason,
            "requestedBy": item.requested_by,
        }
        result = self.webhook.deliver(payload, item.key)
        metrics.REMEDIATION_CALLS.labels(item.action, "ok" if result.ok else "failed").inc()
        details = {"attempts": result.attempts, "httpStatus": result.status}
        if not result.ok:
            details["reason"] = result.reason
        return Outcome(bool(result.ok), details)


class QuarantineRunner:
    def run(self, item: Remediation, ts_ms: int) -> Outcome:
        event = quarantine_event(item, ts_ms)
        return Outcome(True, {"quarantineEventId": event.event_id}, [event])


class RemediationWorker:
    """Processor ``remediation`` (its group and transactional id prefix)."""

    name = "remediation"

    def __init__(
        self,
        names: TopicNames,
        actions: Mapping[str, ActionSpec],
        runners: Mapping[str, ActionRunner],
        *,
        clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.names = names
        self.actions = dict(actions)
        self.runners = dict(runners)
        self.remediations = names.for_event_type("remediation")
        self.input_topics = [names.policy_checks, self.remediations]
        self._clock = clock

    def recover(self, assigned: Sequence[tuple[str, int]], reader: LogReader) -> RemediationBook:
        """Every remediation on the topic, to its end (module docstring, point 3)."""
        book = RemediationBook()
        for partition in reader.partitions(self.remediations):
            for record in reader.read(self.remediations, partition, 0, None):
                book = observe(book, record.event)
        log.info("remediation: %d remediations known", len(book.items))
        return book

    def initial(self) -> RemediationBook:
        return RemediationBook()

    def step(
        self, state: RemediationBook, record: InputRecord
    ) -> tuple[RemediationBook, Sequence[OutputRecord]]:
        event, now = record.event, self._clock()
        if record.topic != self.remediations:
            book, events = on_policy_check(state, event, self.actions, now)
            return book, [self._out(e) for e in events]
        reaction = react(observe(state, event), event, self.actions, now)
        book, events = reaction.book, list(reaction.events)
        if reaction.execute is not None:
            item = reaction.execute
            outcome = self._run(item, now)
            book, done = finish(book, item, ok=outcome.ok, details=outcome.details, ts_ms=now)
            events = [*events, *outcome.events, done]
        return book, [self._out(e) for e in events]

    def _run(self, item: Remediation, now: int) -> Outcome:
        runner = self.runners.get(item.action)
        if runner is None:
            return Outcome(False, {"reason": f"no runner for action {item.action!r}"})
        try:
            return runner.run(item, now)
        except Exception as exc:  # an action's bug is this remediation's failure, recorded
            log.exception("remediation %s: action %s raised", item.remediation_id, item.action)
            return Outcome(False, {"reason": f"the action raised {type(exc).__name__}: {exc}"})

    def _out(self, event: Event) -> OutputRecord:
        if event.event_type == "remediation":
            metrics.REMEDIATION_STEPS.labels(event.body["action"], event.body["status"]).inc()
        topic = self.names.for_event_type(event.event_type)
        return OutputRecord(topic, event.subject.encode(), event)


def runners_for(
    actions: Mapping[str, ActionSpec], webhook: Callable[[ActionSpec], Deliverer]
) -> dict[str, ActionRunner]:
    """A runner per registered action (``webhook`` builds the HTTP adapter of one)."""
    out: dict[str, ActionRunner] = {}
    for name, spec in actions.items():
        out[name] = (
            QuarantineRunner() if spec.type == "quarantine" else WebhookRunner(webhook(spec))
        )
    return out
