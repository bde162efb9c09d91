"""The synchronous check, as a service: decide within a budget, answer once durable.

``POST /sentinel/check`` is a thin entry point over :meth:`CheckService.check`.
The service holds two ports -- the live policies (kept current in memory from
the policies topic by :class:`~streams.sentinel.kafka_policy_feed.KafkaPolicyFeed`)
and the decision log (:class:`~streams.sentinel.kafka_decision_log.KafkaDecisionLog`)
-- so it is tested with fakes and run with Kafka.

One check:

1. The request becomes a kernel-action activation. Its evaluated "event" is the
   request itself: not on the log, so the evidence has no position, but an
   event id derived from ``requestId`` (a retry of the same request reproduces
   the same ``policyCheckId``; without a ``requestId`` a fresh one).
2. The evaluation runs on a worker thread while the event loop waits at most
   what is left of the budget (``KERNEL_CHECK_BUDGET_MS``, measured from the
   request's arrival, so queueing counts).
3. In budget: the policyCheck(s) (``mode="sync"``; a ``simMode`` one too when a
   ``test`` policy was in scope) are published and the answer waits for the
   acknowledgement. Past the budget: the answer is the fallback decision --
   **deny**, the only safe one when the policies' verdict is unknown -- recorded
   as its own policyCheck before answering; the evaluation keeps running and is
   published when it ends as a ``simMode=true`` policyCheck whose id the
   fallback's evidence names (``evidence.completion``).
4. If the log does not acknowledge, nothing was recorded, so there is no
   decision to stand on: the answer is deny with the reason, and the entry
   point returns **503** (``allowed=false`` in the body too, so a client that
   only reads the body still fails closed).

Until the policy feed has read the whole policies topic once, the live set may
be partial; checks are answered with the fallback (deny) and say why.

**Load shedding.** At most ``max_in_flight`` checks are being answered, and at
most as many evaluations run (those past their budget included, until they
end). A check arriving over either limit is not evaluated: it is answered at
once with the fallback, recorded on the log like any other (reason
``overload``). Past its capacity a server then answers the excess with a cheap
"deny, overloaded" instead of letting every request queue behind the
evaluator; the budget alone cannot do that, as it only starts once the
handler runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from schemas.errors import LogUnavailableError
from schemas.events import Event, format_ts
from schemas.positions import LogPosition
from streams.sentinel.check_request import CheckRequest
from streams.sentinel.decision import (
    EvaluatedEvent,
    build_policy_check,
    build_policy_checks,
    check_id_for,
)
from streams.sentinel.evaluator import Evaluation, PolicySet, Role, evaluate
from streams.sentinel.policy import Effect
from streams.sentinel.registry import PolicyRegistry
from streams.sentinel.rules import Activation

__all__ = [
    "FALLBACK",
    "CheckAnswer",
    "CheckService",
    "DecisionLog",
    "Evaluator",
    "LivePolicies",
    "request_event_id",
]

log = logging.getLogger(__name__)

FALLBACK = Effect.DENY
_REQUEST_NS = uuid.UUID("0f3e6c2d-8a41-4f57-b0f6-2c9d7e5a1b83")

Evaluator = Callable[[PolicySet, Activation, str], Evaluation]


class LivePolicies(Protocol):
    """The in-memory live policy set and whether it is complete."""

    @property
    def ready(self) -> bool: ...

    @property
    def registry(self) -> PolicyRegistry: ...


class DecisionLog(Protocol):
    async def publish(self, events: Sequence[Event]) -> list[LogPosition]:
        """Return once every event is durable; :class:`LogUnavailableError` otherwise."""
        ...


@dataclass(frozen=True, slots=True)
class CheckAnswer:
    """What the entry point returns, plus what it needs for metrics."""

    status: int  # 200, or 503 when the log did not take the decision
    body: dict[str, Any]
    result: str  # decided | fallback | error (the latency histogram's label)
    elapsed_s: float
    failed_policies: tuple[str, ...] = ()  # enforced policies that errored (failed closed)
    positions: tuple[LogPosition, ...] = ()
    reason: str | None = None  # why a fallback: timeout | evaluation | log_unavailable | overload


def request_event_id(request: CheckRequest) -> str:
    """The evaluated request's id: derived from ``requestId``, so retries agree."""
    if request.request_id is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(_REQUEST_NS, request.request_id))


@dataclass
class CheckService:
    policies: LivePolicies
    log: DecisionLog
    budget_ms: int = 200
    evaluator: Evaluator = evaluate
    clock: Callable[[], float] = time.perf_counter
    now_ms: Callable[[], int] = field(default=lambda: time.time_ns() // 1_000_000)
    executor: Executor = field(default_factory=lambda: ThreadPoolExecutor(4, "sentinel-eval"))
    max_in_flight: int = 8
    _completions: set[asyncio.Task[None]] = field(default_factory=set)
    # event-loop thread only: checks inside check(), evaluations submitted and not ended
    _answering: int = 0
    _running: int = 0

    async def check(
        self, request: CheckRequest, started: float | None = None, caller: str | None = None
    ) -> CheckAnswer:
        """Decide ``request``; ``caller``, the door's authenticated identity, is its actor
        and is recorded on the decision (with the actor the body claimed, labelled)."""
        if caller is not None:
            request = request.called_by(caller)
        self._answering += 1
        try:
            return await self._check(
                request, self.clock() if started is None else started, caller is not None
            )
        finally:
            self._answering -= 1

    async def _check(self, request: CheckRequest, start: float, called: bool) -> CheckAnswer:
        ts_ms = self.now_ms()
        event_id = request_event_id(request)
        evaluated = EvaluatedEvent(event_id, request.subject_or_default)
        pending: asyncio.Future[Evaluation] | None = None
        if not self.policies.ready:
            evaluation = _fallback(
                "the live policy set is not loaded yet (policy feed catching up)"
            )
            reason: str | None = "log_unavailable"
        elif max(self._answering - 1, self._running) >= self.max_in_flight:
            evaluation = _fallback(
                f"the check service is overloaded (over {self.max_in_flight} checks in "
                "flight); shedding load"
            )
            reason = "overload"
        else:
            evaluation, pending, reason = await self._evaluate(request, ts_ms, event_id, start)
        result = "decided" if reason is None else "fallback"
        checks = self._checks(evaluation, evaluated, request, ts_ms, completing=pending is not None)
        if called:
            caller = _caller_metadata(request)
            for check in checks:
                check.metadata.update(caller)
        try:
            positions = await self.log.publish(checks)
        except LogUnavailableError as exc:
            if pending is not None:
                pending.cancel()
            return self._unrecorded(checks[0], str(exc), start)
        if pending is not None:
            self._complete_later(pending, evaluated, request, ts_ms, called)
        failed = tuple(
            r.policy_id
            for r in evaluation.errors
            if r.effect is not None and r.role is Role.ENFORCED
        )
        elapsed = self.clock() - start
        return CheckAnswer(
            200, _answer(checks[0]), result, elapsed, failed, tuple(positions), reason
        )

    async def _evaluate(
        self, request: CheckRequest, ts_ms: int, event_id: str, start: float
    ) -> tuple[Evaluation, asyncio.Future[Evaluation] | None, str | None]:
        activation = Activation(request.activation_values(ts_ms))
        policy_set = self.policies.registry.policy_set
        loop = asyncio.get_running_loop()
        task = loop.run_in_executor(
            self.executor, self.evaluator, policy_set, activation, request.request_id or event_id
        )
        self._running += 1
        task.add_done_callback(self._ended)
        remaining = self.budget_ms / 1000 - (self.clock() - start)
        try:
            evaluation = await asyncio.wait_for(asyncio.shield(task), max(remaining, 0.0))
        except TimeoutError:
            why = f"the evaluation did not finish within the {self.budget_ms} ms budget"
            return _fallback(why), task, "timeout"
        except Exception as exc:  # an evaluator bug must not become an allow
            log.exception("sentinel: the evaluator failed")
            why = f"the evaluation failed: {type(exc).__name__}: {exc}"
            return _fallback(why), None, "evaluation"
        return evaluation, None, None

    def _ended(self, _task: asyncio.Future[Evaluation]) -> None:
        self._running -= 1

    def _checks(
        self,
        evaluation: Evaluation,
        evaluated: EvaluatedEvent,
        request: CheckRequest,
        ts_ms: int,
        *,
        completing: bool,
    ) -> list[Event]:
        checks = build_policy_checks(
            evaluation,
            evaluated,
            mode="sync",
            request_id=request.request_id,
            deterministic_ids=True,
            ts_ms=ts_ms,
        )
        if completing:
            completion = check_id_for(evaluated.event_id, "sync", True)
            checks[0].body["evidence"]["completion"] = {"policyCheckId": completion}
        return checks

    def _complete_later(
        self,
        pending: asyncio.Future[Evaluation],
        evaluated: EvaluatedEvent,
        request: CheckRequest,
        ts_ms: int,
        called: bool,
    ) -> None:
        async def complete() -> None:
            try:
                evaluation = await pending
            except Exception:
                log.exception("sentinel: the evaluation past the budget failed")
                return
            check = build_policy_check(
                evaluation,
                evaluated,
                mode="sync",
                request_id=request.request_id,
                sim_mode=True,
                policy_check_id=check_id_for(evaluated.event_id, "sync", True),
                ts_ms=ts_ms,
            )
            if called:
                check.metadata.update(_caller_metadata(request))
            try:
                await self.log.publish([check])
            except LogUnavailableError as exc:
                log.warning("sentinel: completion %s not recorded: %s", check.event_id, exc)

        task = asyncio.get_running_loop().create_task(complete())
        self._completions.add(task)
        task.add_done_callback(self._completions.discard)

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait for evaluations still completing past their budget (on shutdown)."""
        if self._completions:
            await asyncio.wait(set(self._completions), timeout=timeout_s)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    def _unrecorded(self, check: Event, reason: str, start: float) -> CheckAnswer:
        body = _answer(check)
        body.update(
            decision=FALLBACK.value,
            allowed=False,
            policyId=None,
            policyVersion=None,
            rationale=f"{FALLBACK.value}: the decision could not be recorded ({reason}); "
            "failing closed",
            evidence=None,
            simMode=False,
        )
        return CheckAnswer(503, body, "error", self.clock() - start, reason="log_unavailable")


def _caller_metadata(request: CheckRequest) -> dict[str, str]:
    out = {"caller": request.actor}
    if request.claimed_actor is not None and request.claimed_actor != request.actor:
        out["claimedActor"] = request.claimed_actor
    return out


def _fallback(why: str) -> Evaluation:
    return Evaluation(FALLBACK, None, f"{FALLBACK.value}: {why}; failing closed")


def _answer(check: Event) -> dict[str, Any]:
    b = check.body
    return {
        "policyCheckId": b["policyCheckId"],
        "decision": b["decision"],
        "allowed": b["allowed"],
        "policyId": b["policyId"],
        "policyVersion": b["policyVersion"],
        "rationale": b["rationale"],
        "evidence": b["evidence"],
        "simMode": b["simMode"],
        "ts": format_ts(check.ts_ms),
    }
