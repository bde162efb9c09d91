"""SentinelNet evaluation alone: µs per decision against 10, 100 and 1,000 policies.

Run: ``.venv/bin/python -m bench.evaluation [--repeat 7] [--number 300]``

Each decision builds the action's activation, selects the policies in scope
through the index, runs every rule, decides and records the path -- what the
sync check and the streaming processor do per action, minus Kafka. The
1,000-policy set has 100 policies in scope of the evaluated action; the other
900 are scoped to other event types or other literal actions, so the figure
shows whether the index keeps unrelated policies off the hot path. Rules cycle
through the shapes of ``bench.rule_engines`` (one in five uses ``matches``);
the ``no regex`` column drops that shape. That shape's pattern is a literal
prefix (``^prod/.*``), which a batch runs as ``startsWith``
(``streams.sentinel.rules``); ``regex kept`` swaps in ``^prod/[a-z]+/``, a
pattern cel-cpp compiles on every call, to show the cost when the rewrite does
not apply. ``+policyCheck`` adds building the ``policyCheck`` event (ready to
encode), ``+encode`` its Avro encoding too, and ``check bytes`` is the encoded
enforced check's size. ``per-rule`` is ``evaluate`` with
batching off (``PolicySet(combine_after=None)``: one engine call per rule), the
path every selection takes until it has been seen twice and whenever a batch
errors. Medians of ``--repeat`` runs, timed in process CPU time
(``time.process_time``): the code is single-threaded, and on a machine shared
with a broker and other jobs, wall time mostly measures who else ran.

Two workloads (column ``workload``; ``matched`` is how many rules the action
matched):

- **worst**: the shapes as they are; the evaluated action satisfies four of
  the five, so 80 of 100 rules in scope match it -- every matched policy is
  in the record, so this is the most a decision can cost;
- **typical**: each rule also carries a guard, ``context.amount % 12 == <i %
  12>`` (:func:`guarded`), that one action in twelve passes, the way guard
  rules fire on a small fraction of actions: the action matches 6 of 100
  (1 of 10). Every rule still runs; only what the matches cost changes.
"""

from __future__ import annotations

import argparse
import statistics
import time
import timeit
from collections.abc import Callable
from dataclasses import replace
from itertools import product

from bench._table import table
from bench.rule_engines import SHAPES
from schemas.codec import EventCodec
from schemas.events import Event, new_event
from streams.sentinel.decision import EvaluatedEvent, build_policy_checks
from streams.sentinel.evaluator import Outcome, PolicySet, compile_policy, evaluate
from streams.sentinel.policy import Effect, Policy, Scope, Severity, State
from streams.sentinel.rules import Activation

EFFECTS = [Effect.ALLOW, Effect.ESCALATE, Effect.REMEDIATE, Effect.QUARANTINE, Effect.DENY]
OTHER_TYPES = ("approval", "remediation", "policyChange", "keyRotation")


def policy(i: int, rule: str, scope: Scope) -> Policy:
    return Policy(
        policy_id=f"p{i:04d}",
        version=1,
        name=f"policy {i}",
        severity=list(Severity)[i % 4],
        scope=scope,
        rule=rule,
        effect=EFFECTS[i % len(EFFECTS)],
        rationale="{policy.id} {effect}: {actor} on {action}",
        state=State.ACTIVE,
    )


KEPT_REGEX = 'resource != null && resource.matches("^prod/[a-z]+/")'
GUARD_MODULUS = 12


def guarded(rule: str, i: int) -> str:
    """The typical workload's rule ``i``: ``rule`` behind a guard one action in 12 passes."""
    return f"context.amount % {GUARD_MODULUS} == {i % GUARD_MODULUS} && ({rule})"


def policy_set(
    total: int,
    in_scope: int,
    shapes: list[str],
    combine_after: int | None = 2,
    *,
    kept_regex: bool = False,
    typical: bool = False,
) -> PolicySet:
    rules = [KEPT_REGEX if kept_regex and s == "null+matches" else SHAPES[s][0] for s in shapes]

    def rule(i: int) -> str:
        found = rules[i % len(rules)]
        return guarded(found, i) if typical else found

    near = Scope(("kernelAction",), actions=("payments.*",))
    out = [policy(i, rule(i), near) for i in range(in_scope)]
    for i in range(in_scope, total):
        if i % 2:
            far = Scope((OTHER_TYPES[i % len(OTHER_TYPES)],))
        else:
            far = Scope(("kernelAction",), actions=(f"svc{i}.op",))
        out.append(replace(policy(i, rule(i), far)))
    return PolicySet((compile_policy(p) for p in out), combine_after=combine_after)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--number", type=int, default=300)
    args = ap.parse_args()
    event = new_event(
        "kernelAction",
        "agent:billing-7",
        "acct:1234",
        {
            "action": "payments.transfer",
            "resource": "prod/ledger/eu",
            "requestId": "req-1",
            "context": {
                "amount": 25000,
                "currency": "EUR",
                "riskScore": 0.42,
                "country": "FR",
                "tags": ["batch", "nightly"],
            },
        },
    )
    where = EvaluatedEvent(event.event_id, event.subject)
    all_shapes = list(SHAPES)
    no_regex = [s for s in SHAPES if s != "null+matches"]

    def median_us(fn: object) -> float:
        runs = timeit.repeat(
            fn,  # type: ignore[arg-type]
            number=args.number,
            repeat=args.repeat,
            timer=time.process_time,
        )
        return float(statistics.median(runs) / args.number * 1e6)

    codec = EventCodec()

    def decide(p: PolicySet) -> Callable[[], object]:
        return lambda: evaluate(p, Activation.of_event(event), "req-1")

    def checks(p: PolicySet) -> list[Event]:
        return build_policy_checks(
            evaluate(p, Activation.of_event(event), "req-1"), where, mode="stream"
        )

    print(f"median of {args.repeat} runs x{args.number} decisions; CPU µs per decision\n")
    rows = []
    for typical, (total, scoped) in product((False, True), ((10, 10), (100, 100), (1000, 100))):
        pset = policy_set(total, scoped, all_shapes, typical=typical)
        pset_plain = policy_set(total, scoped, no_regex, typical=typical)
        pset_kept = policy_set(total, scoped, all_shapes, kept_regex=True, typical=typical)
        pset_single = policy_set(total, scoped, all_shapes, combine_after=None, typical=typical)
        ev = evaluate(pset, Activation.of_event(event), "req-1")
        assert len(ev.results) == scoped, len(ev.results)
        matched = sum(r.outcome is Outcome.MATCHED for r in ev.results)
        t_eval = median_us(decide(pset))
        size = len(codec.encode(checks(pset)[0]))
        rows.append(
            [
                "typical" if typical else "worst",
                matched,
                total,
                scoped,
                median_us(decide(pset_single)),
                t_eval,
                median_us(decide(pset_plain)),
                median_us(decide(pset_kept)),
                median_us(lambda p=pset: checks(p)),
                median_us(lambda p=pset: [codec.encode(c) for c in checks(p)]),
                size,
                t_eval / scoped,
            ]
        )
    table(
        "SentinelNet evaluation, µs per decision",
        ["workload", "matched", "policies", "in scope", "per-rule", "evaluate", "no regex",
         "regex kept", "+policyCheck", "+encode", "check bytes", "µs/in-scope"],
        rows,
    )  # fmt: skip
    print(
        "\n1,000 vs 100 policies (same 100 in scope): the index's overhead for 900 unrelated "
        "policies is the difference of those two rows."
    )


if __name__ == "__main__":
    main()
