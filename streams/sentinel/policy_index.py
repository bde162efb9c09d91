"""The policy index: which live policy versions an action can reach, and their rules run.

:func:`compile_policy` turns a :class:`~streams.sentinel.policy.Policy` into a
:class:`CompiledPolicy` once per version (rule, rationale template, scope
globs, and the orders the precedence uses). :class:`PolicySet` indexes the
live versions by event type, then by literal action name; policies whose
action scope is a glob (or empty) sit in a per-event-type list checked by one
precompiled regex each. A policy for another event type or another literal
action is never looked at, so cost grows with the policies that could apply,
not with the registry.

Everything memoised here -- the (event type, action) groups, the per-selection
:class:`Selection`, the batched rule programs -- is invisible to results:
:meth:`PolicySet.run_rules` returns what running each rule on its own returns
(``tests/unit/sentinel/test_evaluator_properties.py`` proves it).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from streams.sentinel.policy import Policy, State, glob_regex
from streams.sentinel.rationale import RationaleTemplate, compile_template
from streams.sentinel.rules import (
    BATCH_MAX_CHARS,
    Activation,
    AttrPath,
    CompiledRule,
    RuleBatch,
    RuleOutcome,
    compile_batch,
    compile_rule,
    read_paths,
)
from streams.sentinel.verdict import EFFECT_RANK, SEVERITY_RANK, Order

__all__ = [
    "CompiledPolicy",
    "PolicySet",
    "RuleRun",
    "Selection",
    "compile_policy",
    "policy_paths",
]

_GLOB_CHARS = re.compile(r"[*?\[]")
_LIVE = (State.TEST, State.CANARY, State.ACTIVE)


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    policy: Policy
    rule: CompiledRule
    template: RationaleTemplate
    paths: tuple[AttrPath, ...]
    subjects: re.Pattern[str] | None
    actors: re.Pattern[str] | None
    actions: re.Pattern[str] | None
    # constant per version, derived in __post_init__: the decision order when the
    # policy contributes its effect / its fallback, and its compact "id@version"
    matched_order: Order = field(init=False, compare=False, repr=False)
    fallback_order: Order = field(init=False, compare=False, repr=False)
    label: str = field(init=False, compare=False, repr=False)
    severity_text: str = field(init=False, compare=False, repr=False)
    effect_text: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        p = self.policy
        rank = SEVERITY_RANK[p.severity]
        object.__setattr__(
            self, "matched_order", (EFFECT_RANK[p.effect], rank, p.policy_id, p.version)
        )
        object.__setattr__(
            self, "fallback_order", (EFFECT_RANK[p.fallback], rank, p.policy_id, p.version)
        )
        object.__setattr__(self, "label", f"{p.policy_id}@{p.version}")
        object.__setattr__(self, "severity_text", p.severity.value)
        object.__setattr__(self, "effect_text", p.effect.value)

    def in_scope(self, values: Mapping[str, Any]) -> bool:
        return (
            (self.actions is None or self.actions.fullmatch(values["action"]) is not None)
            and (self.subjects is None or self.subjects.fullmatch(values["subject"]) is not None)
            and (self.actors is None or self.actors.fullmatch(values["actor"]) is not None)
        )


@lru_cache(maxsize=16384)
def compile_policy(policy: Policy) -> CompiledPolicy:
    """Compile rule and rationale; raises the create-time validation errors.

    Cached by value: every policy change rebuilds the live set, and recompiling
    each live policy's template and scope globs made a change O(live policies).
    """
    rule = compile_rule(policy.rule)
    template = compile_template(policy.rationale)
    paths = _paths(rule.paths, template)
    s = policy.scope
    return CompiledPolicy(
        policy,
        rule,
        template,
        paths,
        glob_regex(s.subjects),
        glob_regex(s.actors),
        glob_regex(s.actions),
    )


class Selection:
    """What an evaluation needs of one in-scope selection, computed once per selection:
    its candidates (key order), whether all are ``active``, and the evidence paths."""

    __slots__ = ("all_active", "candidates", "paths")

    def __init__(self, candidates: list[CompiledPolicy]) -> None:
        self.candidates = candidates
        # no canary or test version in scope: every candidate is enforced
        self.all_active = all(cp.policy.state is State.ACTIVE for cp in candidates)
        # every path any candidate reads, in order of first appearance: the evidence
        self.paths = tuple(dict.fromkeys(p for cp in candidates for p in cp.paths))


def policy_paths(policy: Policy) -> tuple[AttrPath, ...]:
    """The attribute paths a policy version reads (rule, then rationale), without compiling."""
    return _paths(read_paths(policy.rule), compile_template(policy.rationale))


def _paths(rule: tuple[AttrPath, ...], template: RationaleTemplate) -> tuple[AttrPath, ...]:
    return tuple(dict.fromkeys((*rule, *template.paths)))


class _Group:
    """The policies an (event type, action) can reach, by position in key order."""

    __slots__ = ("checked", "positions")

    def __init__(self, positions: tuple[int, ...], checked: frozenset[int]) -> None:
        self.positions = positions
        self.checked = checked  # those whose subject/actor/action globs must still match


class RuleRun(NamedTuple):
    """The rule outcomes of one selection, in its order."""

    outcomes: list[RuleOutcome]
    clean: bool  # no outcome is an error: each is MATCHED or NOT_MATCHED


_MAX_GROUPS = 4096  # (event type, action) pairs remembered; actions are caller-chosen
_MAX_BATCHES = 256  # compiled batch programs per policy set
_Batches = tuple[tuple[tuple[int, ...], RuleBatch | None], ...]


class PolicySet:
    """An immutable, indexed set of live policy versions (test, canary, active).

    Memoised on the side, invisible to results: the in-scope candidates of each
    (event type, action), what an evaluation needs of each in-scope selection
    (:class:`Selection`), and -- from the ``combine_after``-th evaluation of the
    same in-scope selection on -- its rules compiled as :class:`RuleBatch`
    programs of at most :data:`~streams.sentinel.rules.BATCH_MAX_CHARS`.
    ``combine_after=None`` turns batches off (every rule on its own). Dict
    reads and writes are atomic, so concurrent evaluations at worst compile a
    batch twice.
    """

    def __init__(
        self, policies: Iterable[CompiledPolicy], *, combine_after: int | None = 2
    ) -> None:
        self._literal: dict[tuple[str, str], list[int]] = defaultdict(list)
        self._glob: dict[str, list[int]] = defaultdict(list)
        self.policies = sorted(
            (p for p in policies if p.policy.state in _LIVE), key=lambda p: p.policy.key
        )
        for i, cp in enumerate(self.policies):
            actions = cp.policy.scope.actions
            for event_type in cp.policy.scope.event_types:
                if actions and not any(_GLOB_CHARS.search(a) for a in actions):
                    for action in actions:
                        self._literal[(event_type, action)].append(i)
                else:
                    self._glob[event_type].append(i)
        self._groups: dict[tuple[str, str], _Group] = {}
        self._combine_after = combine_after
        self._seen: dict[tuple[int, ...], int] = {}
        self._batches: dict[tuple[int, ...], _Batches] = {}
        self._selections: dict[tuple[int, ...], Selection] = {}

    def __len__(self) -> int:
        return len(self.policies)

    def in_scope(self, values: Mapping[str, Any]) -> list[CompiledPolicy]:
        every = self.policies
        return [every[i] for i in self.select(values)]

    def select(self, values: Mapping[str, Any]) -> tuple[int, ...]:
        """Positions (in ``policies``, so in key order) of the policies in scope."""
        key = (values["eventType"], values["action"])
        group = self._groups.get(key)
        if group is None:
            group = self._group(key)
        if not group.checked:
            return group.positions
        every = self.policies
        return tuple(
            i for i in group.positions if i not in group.checked or every[i].in_scope(values)
        )

    def _group(self, key: tuple[str, str]) -> _Group:
        # the action is part of the key, so action globs are resolved here once;
        # subject and actor globs are left to each call
        every = self.policies
        glob = [i for i in self._glob.get(key[0], ()) if _action_in_scope(every[i], key[1])]
        positions = tuple(sorted({*self._literal.get(key, ()), *glob}))
        checked = frozenset(
            i for i in positions if every[i].subjects is not None or every[i].actors is not None
        )
        group = _Group(positions, checked)
        if len(self._groups) < _MAX_GROUPS:
            self._groups[key] = group
        return group

    def selection(self, positions: tuple[int, ...]) -> Selection:
        found = self._selections.get(positions)
        if found is None:
            found = Selection([self.policies[i] for i in positions])
            if len(self._selections) >= _MAX_GROUPS:
                self._selections.clear()
            self._selections[positions] = found
        return found

    def outcomes(self, positions: tuple[int, ...], activation: Activation) -> list[RuleOutcome]:
        """Each selected policy's rule outcome, batched when the selection is a regular."""
        return self.run_rules(positions, activation).outcomes

    def run_rules(self, positions: tuple[int, ...], activation: Activation) -> RuleRun:
        """Run the rules of the policies at ``positions`` (from :meth:`select`).

        Batched once the selection is a regular; a batch that errors or gives a
        non-boolean falls back to each rule on its own, so the outcomes are
        always those of every rule run alone.
        """
        every = self.policies
        batches = self._batches.get(positions)
        if batches is None:
            batches = self._maybe_compile(positions)
            if batches is None:
                out = [every[i].rule.evaluate(activation) for i in positions]
                return RuleRun(out, all(o.error is None for o in out))
        out = []
        clean = True
        for chunk, batch in batches:
            found = None if batch is None else batch.outcomes(activation)
            if found is None:  # an error or a non-boolean: each rule on its own
                found = [every[i].rule.evaluate(activation) for i in chunk]
                clean = clean and all(o.error is None for o in found)
            out.extend(found)
        return RuleRun(out, clean)

    def _maybe_compile(self, positions: tuple[int, ...]) -> _Batches | None:
        after = self._combine_after
        if after is None or len(positions) < 2 or len(self._batches) >= _MAX_BATCHES:
            return None
        seen = self._seen.get(positions, 0) + 1
        if seen < after:
            if len(self._seen) >= _MAX_GROUPS:
                self._seen.clear()
            self._seen[positions] = seen
            return None
        self._seen.pop(positions, None)
        batches = tuple(
            (chunk, _batch(tuple(self.policies[i].rule for i in chunk)))
            for chunk in _chunks(positions, self.policies)
        )
        self._batches[positions] = batches
        return batches


@lru_cache(maxsize=_MAX_BATCHES)
def _batch(rules: tuple[CompiledRule, ...]) -> RuleBatch | None:
    """Shared across policy sets: a lifecycle step that keeps the rules keeps the program."""
    return compile_batch(rules)


def _action_in_scope(cp: CompiledPolicy, action: str) -> bool:
    return cp.actions is None or cp.actions.fullmatch(action) is not None


def _chunks(positions: tuple[int, ...], every: Sequence[CompiledPolicy]) -> list[tuple[int, ...]]:
    """Split so each batch's source stays under the engine's size limit."""
    out: list[tuple[int, ...]] = []
    current: list[int] = []
    size = 2
    for i in positions:
        cost = len(every[i].rule.source) + 4
        if current and size + cost > BATCH_MAX_CHARS:
            out.append(tuple(current))
            current, size = [], 2
        current.append(i)
        size += cost
    if current:
        out.append(tuple(current))
    return out
