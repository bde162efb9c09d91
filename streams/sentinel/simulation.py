"""Simulation over history: a candidate policy version beside the active set. Pure: no I/O.

A candidate (a ``draft`` or ``test`` version) is judged beside the versions
that are enforced now (``active`` and ``canary``; other ``test`` versions are
left out, so one simulation measures one candidate) over each action of a
window of history (:func:`judge`):

- the **active decision** is the stream's own: the evaluator's index and rule
  run over the enforced set (:func:`active_decision`, which skips building the
  record of the decision -- the named non-matches, the evidence, the rationale
  -- that a simulation does not keep, and otherwise calls the evaluator);
- the **candidate decision** is what enforcement would be with the candidate
  promoted in place of its policy's enforced version: for a new policy, the
  precedence of the candidate's outcome against the active decider
  (:func:`candidate_decision`; deciding over a union is the better of the two
  decisions); for a new version, the evaluator over the promoted set. A
  candidate that errors contributes nothing: simulated, it fails open.

The candidate's rule runs through its own one-policy index, so its scope and
rule are run exactly as the stream would run them once it is promoted.
``tests/unit/sentinel/test_simulation_judge.py`` proves both decisions equal the
evaluator's over random policy sets. Nothing is enforced and nothing is
emitted: a judgement is tallied, never turned into a ``policyCheck``; the
examples a report carries are evaluated with the candidate in the evaluator's
``test`` role, so their paths read as explain shows a simulated check.

A :class:`SimulationTally` counts one slice of the window; tallies of disjoint
slices :meth:`~SimulationTally.merge` into the tally of their union (counters
add; each kind keeps its first examples in ``(partition, offset)`` order), so
the window can be split across processes and give the same report.

The window (:class:`Window`) is ``since`` (a duration back from now, resolved
by the log's time index), ``last`` (the newest N records, spread evenly over
the partitions) or ``offsets`` (from a start offset per partition); each
resolves to half-open offset ranges per partition (:func:`resolve_ranges`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import compress
from operator import attrgetter
from typing import Any

from schemas.errors import ValidationError
from schemas.events import Event
from streams.sentinel.evaluation import Outcome, PolicyResult
from streams.sentinel.policy import Effect, Policy, State
from streams.sentinel.policy_index import CompiledPolicy, PolicySet
from streams.sentinel.registry import compile_live
from streams.sentinel.rules import Activation, RuleOutcome
from streams.sentinel.stream import evaluate_event
from streams.sentinel.verdict import EFFECT_RANK, SEVERITY_RANK, Order

__all__ = [
    "EXAMPLES_PER_KIND",
    "TOP_KEYS",
    "Example",
    "Judged",
    "SimulationSets",
    "SimulationTally",
    "Window",
    "active_decision",
    "candidate_decision",
    "judge",
    "parse_duration",
    "parse_offsets",
    "report_body",
    "resolve_ranges",
    "simulation_set",
    "split_ranges",
]

EXAMPLES_PER_KIND = 3
TOP_KEYS = 50  # actors / subjects / actions listed per change; the rest are counted
_SIMULABLE = (State.DRAFT, State.TEST)
_ENFORCED = (State.ACTIVE, State.CANARY)
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
Ranges = dict[int, tuple[int, int]]  # partition -> [start, end)


# -- the window -------------------------------------------------------------------
@dataclass(frozen=True)
class Window:
    """Which history: exactly one of ``since_ms`` (a duration), ``last`` or ``offsets``."""

    since_ms: int | None = None
    last: int | None = None
    offsets: Mapping[int, int] | None = None

    def __post_init__(self) -> None:
        given = [x for x in (self.since_ms, self.last, self.offsets) if x is not None]
        if len(given) != 1:
            raise ValidationError("give exactly one of --since, --last, --from-offsets")
        if self.last is not None and self.last < 1:
            raise ValidationError("must be a positive number of events", field="last")
        if self.since_ms is not None and self.since_ms < 1:
            raise ValidationError("must be a positive duration", field="since")

    def to_json(self) -> dict[str, Any]:
        if self.since_ms is not None:
            return {"kind": "since", "sinceMs": self.since_ms}
        if self.last is not None:
            return {"kind": "last", "last": self.last}
        assert self.offsets is not None
        return {"kind": "offsets", "offsets": {str(p): o for p, o in sorted(self.offsets.items())}}


def parse_duration(text: str) -> int:
    """``90s``, ``30m``, ``24h``, ``7d`` -> milliseconds."""
    m = _DURATION.fullmatch(text.strip())
    if m is None or int(m.group(1)) == 0:
        raise ValidationError(
            f"{text!r} is not a duration; write a positive number and a unit s, m, h or d "
            "(e.g. 24h)",
            field="since",
        )
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


def parse_offsets(text: str) -> dict[int, int]:
    """``0:120,1:0`` -> {partition: start offset}; partitions not named are not read."""
    out: dict[int, int] = {}
    for part in text.split(","):
        p, sep, o = part.strip().partition(":")
        if not sep or not p.isdigit() or not o.isdigit():
            raise ValidationError(
                f"{part.strip()!r} is not PARTITION:OFFSET; write e.g. 0:120,1:0,2:35",
                field="from-offsets",
            )
        if int(p) in out:
            raise ValidationError(f"partition {p} given twice", field="from-offsets")
        out[int(p)] = int(o)
    return out


def resolve_ranges(
    window: Window,
    starts: Mapping[int, int],
    ends: Mapping[int, int],
    at_time: Mapping[int, int] | None = None,
) -> Ranges:
    """Offset ranges per partition: ``starts``/``ends`` are the log's first and end
    offsets, ``at_time`` the first offset at ``now - since`` (for ``since``)."""
    if window.since_ms is not None:
        if at_time is None:
            raise ValueError("a since window needs the offsets at its start time")
        return {p: (max(at_time.get(p, e), starts[p]), e) for p, e in sorted(ends.items())}
    if window.offsets is not None:
        unknown = sorted(set(window.offsets) - set(ends))
        if unknown:
            raise ValidationError(
                f"no partition {unknown[0]} (the topic has {len(ends)})", field="from-offsets"
            )
        return {
            p: (min(max(o, starts[p]), ends[p]), ends[p]) for p, o in sorted(window.offsets.items())
        }
    assert window.last is not None
    take = _spread(window.last, {p: ends[p] - starts[p] for p in ends})
    return {p: (ends[p] - take[p], ends[p]) for p in sorted(ends)}


def _spread(n: int, available: Mapping[int, int]) -> dict[int, int]:
    """``n`` taken as evenly as the partitions allow (water-filling), deterministic."""
    take = dict.fromkeys(available, 0)
    left = min(n, sum(available.values()))
    while left:
        open_ = [p for p in sorted(available) if take[p] < available[p]]
        share = max(1, left // len(open_))
        for p in open_:
            got = min(share, available[p] - take[p], left)
            take[p] += got
            left -= got
            if not left:
                break
    return take


def split_ranges(ranges: Ranges, parts: int) -> list[Ranges]:
    """``parts`` slices, each holding a contiguous share of every partition's range."""
    out: list[Ranges] = [{} for _ in range(parts)]
    for p, (start, end) in sorted(ranges.items()):
        size = end - start
        for i in range(parts):
            lo, hi = start + size * i // parts, start + size * (i + 1) // parts
            if hi > lo:
                out[i][p] = (lo, hi)
    return [r for r in out if r]


# -- the policy sets ----------------------------------------------------------------
class SimulationSets:
    """The compiled sets one simulation evaluates each action with.

    - ``active``: the enforced versions of the live set (active, canary): the
      active decision, the stream's own evaluation;
    - ``candidate``: the candidate compiled as it would be enforced, alone in
      its own index (its scope and rule, run as the stream runs them);
    - ``promoted``: the active set with the candidate in place of its policy's
      enforced version, evaluated in full only when there is one (``replaces``);
    - ``without``: the active set without the candidate's policy: the candidate
      decision when the candidate errors (a simulated error fails open);
    - ``test``: the active set and the candidate in the ``test`` role: the
      evaluation path of an example, as explain would show a simulated check.

    When the candidate is a new policy the candidate decision needs no second
    evaluation: it is the precedence of the candidate's contribution against
    the active decider (``decide`` over the union is the better of the two),
    which :func:`candidate_decision` computes and
    ``tests/unit/sentinel/test_simulation_judge.py`` proves equal to evaluating
    ``promoted`` in full.

    Raises :class:`ValidationError` when the candidate cannot be simulated: it
    is enforced already, deprecated, or older than an enforced version of its
    policy.
    """

    def __init__(self, live: Iterable[Policy], candidate: Policy) -> None:
        if candidate.state not in _SIMULABLE:
            raise ValidationError(
                f"{candidate.policy_id} v{candidate.version} is {candidate.state.value}; only a "
                "draft or test version is simulated (an enforced one already decides)",
                field="version",
            )
        enforced = [p for p in live if p.state in _ENFORCED]
        pid = candidate.policy_id
        version = candidate.version
        newer = [p.version for p in enforced if p.policy_id == pid and p.version > version]
        if newer:
            raise ValidationError(
                f"{pid} v{max(newer)} is enforced and newer than "
                f"v{candidate.version}; simulate a new version instead",
                field="version",
            )
        others = [p for p in enforced if p.policy_id != pid]
        promoted = compile_live(candidate.with_state(State.ACTIVE))
        self.policy = candidate
        self.replaces = len(others) != len(enforced)
        self.active = PolicySet(compile_live(p) for p in enforced)
        self.candidate = PolicySet([promoted])
        self.promoted = PolicySet([*(compile_live(p) for p in others), promoted])
        self.without = PolicySet(compile_live(p) for p in others)
        # a new policy: the enforced set and the candidate in one index, run in one batch;
        # ``at`` is the candidate's position in it
        self.both = PolicySet([*(compile_live(p) for p in enforced), promoted])
        self.at = next(i for i, cp in enumerate(self.both.policies) if cp is promoted)
        simulated = candidate.with_state(State.TEST)
        self.test = PolicySet(compile_live(p) for p in [*enforced, simulated])

    @property
    def active_labels(self) -> list[str]:
        return [cp.label for cp in self.active.policies]


def simulation_set(live: Iterable[Policy], candidate: Policy) -> SimulationSets:
    """The sets to simulate ``candidate`` beside the enforced versions of ``live``."""
    return SimulationSets(live, candidate)


@dataclass(frozen=True, slots=True)
class Judged:
    """One action judged both ways."""

    active: Effect
    candidate: Effect
    outcome: Outcome | None  # the candidate's rule: None when out of scope
    error: str | None = None


def judge(sets: SimulationSets, event: Event) -> Judged:
    """The active and the candidate decision of one action. Never enforces."""
    activation = Activation.of_event(event)
    if not sets.replaces:
        found = _judge_in_one_run(sets, activation)
        if found is not None:
            return found
    active, order = active_decision(sets.active, event, activation)
    positions = sets.candidate.select(activation.values)
    if not positions:
        outcome = None
        ran = RuleOutcome(matched=False)
    else:
        ran = sets.candidate.run_rules(positions, activation).outcomes[0]
        outcome = _outcome(ran)
    if ran.error is not None:
        if sets.replaces:  # its policy's enforced version steps aside; the candidate fails open
            fallback = evaluate_event(sets.without, event, activation).decision
        else:
            fallback = active
        return Judged(active, fallback, outcome, ran.error)
    if sets.replaces:
        promoted = evaluate_event(sets.promoted, event, activation).decision
        return Judged(active, promoted, outcome)
    decided = candidate_decision(active, order, sets.candidate.policies[0], ran)
    return Judged(active, decided, outcome)


def _judge_in_one_run(sets: SimulationSets, activation: Activation) -> Judged | None:
    """A new policy's judgement from one rule run over the enforced set and the candidate
    (one batched engine call per action instead of two); None unless every enforced
    policy in scope is active and gave a boolean (then :func:`judge` takes the long way)."""
    both = sets.both
    positions = both.select(activation.values)
    selection = both.selection(positions)
    if not selection.all_active:
        return None
    run = both.run_rules(positions, activation)
    outcomes = run.outcomes
    at = positions.index(sets.at) if sets.at in positions else None
    if not run.clean and any(o.error is not None for i, o in enumerate(outcomes) if i != at):
        return None
    candidate = sets.both.policies[sets.at]
    matched = [
        cp
        for cp in compress(selection.candidates, map(_is_matched, outcomes))
        if cp is not candidate
    ]
    best = min(matched, key=_by_matched_order) if matched else None
    active = Effect.ALLOW if best is None else best.policy.effect
    if at is None:
        return Judged(active, active, None)
    ran = outcomes[at]
    if ran.error is not None:
        return Judged(active, active, Outcome.ERROR, ran.error)
    order = None if best is None else best.matched_order
    return Judged(active, candidate_decision(active, order, candidate, ran), _outcome(ran))


def active_decision(
    policies: PolicySet, event: Event, activation: Activation
) -> tuple[Effect, Order | None]:
    """The decision :func:`~streams.sentinel.stream.evaluate_event` takes, and its decider's
    order (None: nothing contributed).

    The evaluator's own index and rule run, without the record of the
    decision (the named non-matches, the evidence, the rationale): when every
    policy in scope is active and every rule gave a boolean the decider is the
    matched policy of least order, as in the evaluator's fast path; otherwise
    (a canary in scope, an error) the evaluator decides in full.
    """
    positions = policies.select(activation.values)
    selection = policies.selection(positions)
    if selection.all_active:
        run = policies.run_rules(positions, activation)
        if run.clean:
            # C-level iteration: with 100 policies in scope this loop was a fifth of a judgement
            matched = list(compress(selection.candidates, map(_is_matched, run.outcomes)))
            if not matched:
                return Effect.ALLOW, None
            best = min(matched, key=_by_matched_order)
            return best.policy.effect, best.matched_order
    evaluation = evaluate_event(policies, event, activation)
    return evaluation.decision, _order(evaluation.deciding)


_by_matched_order = attrgetter("matched_order")
_is_matched = attrgetter("matched")


def _order(r: PolicyResult | None) -> Order | None:
    if r is None or r.effect is None:
        return None
    return (EFFECT_RANK[r.effect], SEVERITY_RANK[r.severity], r.policy_id, r.version)


def candidate_decision(
    active: Effect, order: Order | None, candidate: CompiledPolicy, ran: RuleOutcome
) -> Effect:
    """The decision over the active results (``active``, decided by ``order``) and a new
    policy's clean outcome ``ran``: the better of the two, by precedence."""
    if not ran.matched:
        return active
    if order is None or candidate.matched_order < order:
        return candidate.policy.effect
    return active


def _outcome(ran: RuleOutcome) -> Outcome:
    if ran.error is not None:
        return Outcome.ERROR
    return Outcome.MATCHED if ran.matched else Outcome.NOT_MATCHED


# -- the tally ---------------------------------------------------------------------
@dataclass(frozen=True)
class Example:
    kind: str  # newlyDenied | newlyAllowed | changed | error | matched
    partition: int
    offset: int
    detail: dict[str, Any]


def _change_kind(active: Effect, candidate: Effect) -> str | None:
    if active is candidate:
        return None
    if candidate is Effect.DENY:
        return "newlyDenied"
    if candidate is Effect.ALLOW:
        return "newlyAllowed"
    return "changed"


@dataclass
class _Change:
    count: int = 0
    by_actor: Counter[str] = field(default_factory=Counter)
    by_subject: Counter[str] = field(default_factory=Counter)
    by_action: Counter[str] = field(default_factory=Counter)

    def add(self, actor: str, subject: str, action: str) -> None:
        self.count += 1
        self.by_actor[actor] += 1
        self.by_subject[subject] += 1
        self.by_action[action] += 1

    def merge(self, other: _Change) -> None:
        self.count += other.count
        self.by_actor.update(other.by_actor)
        self.by_subject.update(other.by_subject)
        self.by_action.update(other.by_action)

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "byActor": _top(self.by_actor),
            "bySubject": _top(self.by_subject),
            "byAction": _top(self.by_action),
        }


def _top(counts: Counter[str]) -> dict[str, Any]:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = ranked[:TOP_KEYS]
    return {
        "top": [{"key": k, "count": n} for k, n in shown],
        "otherKeys": len(ranked) - len(shown),
        "otherCount": sum(n for _, n in ranked[TOP_KEYS:]),
    }


_KINDS = ("newlyDenied", "newlyAllowed", "changed")


@dataclass
class SimulationTally:
    """Counts over one slice of the window for the candidate ``policy_id``."""

    policy_id: str
    version: int
    evaluated: int = 0
    skipped: int = 0  # records on the topic that are not kernel actions, or undecodable
    in_scope: int = 0
    matched: int = 0
    errors: int = 0
    active: Counter[str] = field(default_factory=Counter)
    candidate: Counter[str] = field(default_factory=Counter)
    transitions: Counter[str] = field(default_factory=Counter)
    changes: dict[str, _Change] = field(default_factory=lambda: {k: _Change() for k in _KINDS})
    error_reasons: Counter[str] = field(default_factory=Counter)
    examples: list[Example] = field(default_factory=list)
    first_ts_ms: int | None = None
    last_ts_ms: int | None = None

    def run(self, sets: SimulationSets, events: Iterable[tuple[int, int, Event]]) -> None:
        """Judge and tally each ``(partition, offset, event)``; never enforces."""
        for partition, offset, event in events:
            if event.event_type != "kernelAction":
                self.skipped += 1
                continue
            kind = self.add(event, judge(sets, event))
            if kind is not None and self._wants(kind):
                self.examples.append(
                    Example(kind, partition, offset, _detail(sets, event, offset, partition))
                )

    def add(self, event: Event, judged: Judged) -> str | None:
        """Count one judged action; the kind of example it would be, if any."""
        self.evaluated += 1
        ts = event.ts_ms
        if self.first_ts_ms is None or ts < self.first_ts_ms:
            self.first_ts_ms = ts
        if self.last_ts_ms is None or ts > self.last_ts_ms:
            self.last_ts_ms = ts
        active = judged.active
        candidate = judged.candidate
        self.active[active.value] += 1
        self.candidate[candidate.value] += 1
        example: str | None = None
        if judged.outcome is not None:
            self.in_scope += 1
            if judged.outcome is Outcome.MATCHED:
                self.matched += 1
                example = "matched"
            elif judged.outcome is Outcome.ERROR:
                self.errors += 1
                self.error_reasons[judged.error or "error"] += 1
                example = "error"
        kind = _change_kind(active, candidate)
        if kind is not None:
            self.transitions[f"{active.value}->{candidate.value}"] += 1
            action = str(event.body.get("action", event.event_type))
            self.changes[kind].add(event.actor, event.subject, action)
            example = kind
        return example

    def _wants(self, kind: str) -> bool:
        return sum(1 for e in self.examples if e.kind == kind) < EXAMPLES_PER_KIND

    def merge(self, other: SimulationTally) -> SimulationTally:
        """This tally with ``other`` (a disjoint slice) added in; returns self."""
        self.evaluated += other.evaluated
        self.skipped += other.skipped
        self.in_scope += other.in_scope
        self.matched += other.matched
        self.errors += other.errors
        for mine, theirs in (
            (self.active, other.active),
            (self.candidate, other.candidate),
            (self.transitions, other.transitions),
            (self.error_reasons, other.error_reasons),
        ):
            mine.update(theirs)
        for k in _KINDS:
            self.changes[k].merge(other.changes[k])
        firsts = [t for t in (self.first_ts_ms, other.first_ts_ms) if t is not None]
        lasts = [t for t in (self.last_ts_ms, other.last_ts_ms) if t is not None]
        self.first_ts_ms = min(firsts) if firsts else None
        self.last_ts_ms = max(lasts) if lasts else None
        kept: list[Example] = []
        for e in sorted([*self.examples, *other.examples], key=lambda e: (e.partition, e.offset)):
            if sum(1 for k in kept if k.kind == e.kind) < EXAMPLES_PER_KIND:
                kept.append(e)
        self.examples = kept
        return self

    def to_json(self) -> dict[str, Any]:
        """The report: counts, rates, the change against the active set, examples."""
        n = self.evaluated
        return {
            "eventsEvaluated": n,
            "recordsSkipped": self.skipped,
            "candidateInScope": self.in_scope,
            "candidateMatched": self.matched,
            "matchRate": round(self.matched / n, 6) if n else 0.0,
            "errors": self.errors,
            "errorRate": round(self.errors / n, 6) if n else 0.0,
            "errorReasons": _top(self.error_reasons),
            "decisions": {
                "active": dict(sorted(self.active.items())),
                "candidate": dict(sorted(self.candidate.items())),
            },
            "changes": {
                "total": sum(self.transitions.values()),
                "transitions": dict(sorted(self.transitions.items())),
                **{k: c.to_json() for k, c in self.changes.items()},
            },
            "firstEventTs": self.first_ts_ms,
            "lastEventTs": self.last_ts_ms,
            "examples": [{"kind": e.kind, **e.detail} for e in self.examples],
        }


def _detail(sets: SimulationSets, event: Event, offset: int, partition: int) -> dict[str, Any]:
    """An example: the event, both decisions, and the evaluation path explain would show
    for a check with the candidate in the ``test`` role (few examples: the general path)."""
    judged = judge(sets, event)
    active = evaluate_event(sets.active, event)
    shown = evaluate_event(sets.test, event)
    return {
        "eventId": event.event_id,
        "partition": partition,
        "offset": offset,
        "actor": event.actor,
        "subject": event.subject,
        "action": str(event.body.get("action", event.event_type)),
        "active": {"decision": active.decision.value, "rationale": active.rationale},
        "candidate": {
            "decision": judged.candidate.value,
            "rationale": shown.sim_rationale or shown.rationale,
        },
        "path": [r.to_json() for r in shown.path],
    }


def report_body(
    simulation_id: str,
    candidate: Policy,
    *,
    actions_topic: str,
    window: Window,
    ranges: Ranges,
    sets: SimulationSets,
    tally: SimulationTally,
) -> dict[str, Any]:
    """The ``policySimulation`` event's body."""
    return {
        "simulationId": simulation_id,
        "policyId": candidate.policy_id,
        "version": candidate.version,
        "actionsTopic": actions_topic,
        "window": window.to_json(),
        "ranges": {str(p): [s, e] for p, (s, e) in sorted(ranges.items())},
        "activeSet": sets.active_labels,
        "report": tally.to_json(),
    }
