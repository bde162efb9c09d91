"""``kernel policy create|version|show|list|transition|simulate``: the policy lifecycle, on the log.

Every command that changes a policy rebuilds the registry from the policies
topic, validates the policy (rule compiled and checked against the kernel
action schema, rationale placeholders) and the lifecycle move against it, and
only then publishes one ``policyChange`` event (actor = ``--actor``). The
registry projection and the evaluators pick the change up from the log.

``simulate`` runs a draft or test version over a window of the actions topic
beside the enforced set (:mod:`streams.sentinel.simulation`, read by
:mod:`streams.sentinel.kafka_history`) and publishes the report as one
``policySimulation`` event; it enforces nothing and emits no ``policyCheck``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ops.approvals import activation_gate
from ops.bootstrap import Kernel, bootstrap
from ops.commands import Subparsers
from ops.config import Settings
from schemas.errors import ValidationError
from streams.approvals.log import ActivationGate
from streams.sentinel.errors import TransitionError
from streams.sentinel.evaluator import compile_policy
from streams.sentinel.kafka_registry import load_registry
from streams.sentinel.lifecycle import PolicyChange, plan_create, plan_transition, plan_version
from streams.sentinel.policy import Policy, State, loads_policy
from streams.sentinel.registry import PolicyRegistry
from streams.sentinel.simulation import (
    Window,
    parse_duration,
    parse_offsets,
    report_body,
    simulation_set,
)

if TYPE_CHECKING:
    from schemas.codec import EventCodec
    from schemas.events import Event

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("policy", help="create, version, inspect and move SentinelNet policies")
    cmds = p.add_subparsers(dest="policy_command", required=True, metavar="ACTION")

    for name, helptext in (
        ("create", "create a policy (version 1, draft) from a JSON file"),
        ("version", "add a new version (draft) of an existing policy from a JSON file"),
    ):
        c = cmds.add_parser(name, help=helptext)
        c.add_argument("file", help="the policy as JSON, or - for standard input")
        c.add_argument("--actor", required=True, help="who makes the change (recorded)")
        c.add_argument("--reason", help="why (recorded)")
        c.set_defaults(func=_create if name == "create" else _version)

    t = cmds.add_parser("transition", help="move a policy version to another lifecycle state")
    t.add_argument("policy_id")
    t.add_argument("version", type=int)
    t.add_argument("state", choices=[s.value for s in State])
    t.add_argument("--actor", required=True, help="who makes the change (recorded)")
    t.add_argument("--reason", help="why (recorded)")
    t.add_argument("--percent", type=float, help="canary percent (required for canary)")
    t.add_argument(
        "--history",
        default="24h",
        metavar="DURATION",
        help="to canary: the history gate simulates the version over this much of the log "
        "first (default 24h); over its newly-denied budget, the canary is refused",
    )
    t.set_defaults(func=_transition)

    s = cmds.add_parser("show", help="a policy's versions and history, as JSON")
    s.add_argument("policy_id")
    s.set_defaults(func=_show)

    ls = cmds.add_parser("list", help="every policy: id, versions and their states")
    ls.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    ls.set_defaults(func=_list)

    sim = cmds.add_parser(
        "simulate", help="run a draft/test version over history beside the active set"
    )
    sim.add_argument("policy", metavar="ID[@VERSION]", help="the candidate (default: newest)")
    window = sim.add_mutually_exclusive_group(required=True)
    window.add_argument("--since", help="history this far back: 90s, 30m, 24h, 7d")
    window.add_argument("--last", type=int, help="the newest N actions (spread over partitions)")
    window.add_argument(
        "--from-offsets", metavar="P:O,...", help="from these offsets to the end, per partition"
    )
    sim.add_argument("--actor", required=True, help="who asks for the simulation (recorded)")
    sim.add_argument("--workers", type=int, default=2, help="processes to split the window over")
    sim.add_argument("--json", action="store_true", help="print the report event as JSON")
    sim.set_defaults(func=_simulate)


def _registry(kernel: Kernel, gate: ActivationGate | None = None) -> PolicyRegistry:
    """The registry from the log, folded under the k-of-n rule as every replay is."""
    return load_registry(
        kernel.kafka,
        kernel.codec,
        kernel.names.policies,
        timeout_s=kernel.settings.publish_timeout_s,
        approvals=gate or activation_gate(kernel),
    )


def _read_policy(path: str) -> Policy:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    policy = loads_policy(text)
    compile_policy(policy)  # rule and rationale: rejected here, before anything is published
    return policy


def _publish(kernel: Kernel, change: PolicyChange) -> int:
    event = change.to_event()
    with kernel.producer() as producer:
        position = producer.publish(event)
    p = change.policy
    print(
        f"{change.kind.value} {p.policy_id} v{p.version}: "
        f"{change.from_state.value if change.from_state else '-'} -> {p.state.value} "
        f"by {change.actor} ({event.event_id} at {position})"
    )
    return 0


def _create(args: argparse.Namespace, kernel: Kernel) -> int:
    policy = _read_policy(args.file)
    change = plan_create(_registry(kernel).state, policy, args.actor)
    return _publish(kernel, _with_reason(change, args.reason))


def _version(args: argparse.Namespace, kernel: Kernel) -> int:
    policy = _read_policy(args.file)
    change = plan_version(_registry(kernel).state, policy, args.actor)
    return _publish(kernel, _with_reason(change, args.reason))


def _transition(args: argparse.Namespace, kernel: Kernel) -> int:
    # A HIGH/CRITICAL activation needs a quorum on the approvals topic: refused here,
    # before anything is published, and again by every fold of the log.
    gate = activation_gate(kernel)
    registry = _registry(kernel, gate)
    change = plan_transition(
        registry.state,
        args.policy_id,
        args.version,
        State(args.state),
        args.actor,
        reason=args.reason,
        canary_percent=args.percent,
        approvals=gate,
    )
    if change.policy.state is State.CANARY:
        verdict = _history_gate(args, kernel, registry, change.policy)
        change = _with_reason(change, "; ".join(filter(None, (args.reason, verdict))))
    return _publish(kernel, change)


def _history_gate(
    args: argparse.Namespace, kernel: Kernel, registry: PolicyRegistry, canary: Policy
) -> str:
    """The candidate over recent history, before its canary: over its newly-denied
    budget it is refused (nothing published but the simulation report); too little
    history is said in the change's reason, and promotion still waits for live data."""
    from streams.rollout.gates import Outcome, Thresholds, history_gate  # noqa: PLC0415

    window = Window(since_ms=parse_duration(args.history))
    candidate = replace(canary, state=State.TEST)
    event, where = _run_simulation(kernel, registry, candidate, window, args.actor, workers=2)
    body = event.body
    report = body["report"]
    in_scope, newly = report["candidateInScope"], report["changes"]["newlyDenied"]["count"]
    thresholds = Thresholds.from_spec(dict(canary.rollout))
    verdict = history_gate(in_scope, newly, thresholds)
    said = (
        f"history gate {verdict.outcome.value}: {newly} newly denied of {in_scope} actions "
        f"in scope over {args.history} (budget {thresholds.history_newly_denied_budget:.2%}, "
        f"minimum {thresholds.min_sample}); simulation {body['simulationId']} at {where}"
    )
    if verdict.outcome is Outcome.FAIL:
        raise TransitionError(f"{canary.policy_id} v{canary.version} may not enter canary: {said}")
    print(f"kernel policy: {said}")
    return said


def _with_reason(change: PolicyChange, reason: str | None) -> PolicyChange:
    return replace(change, reason=reason)


def _show(args: argparse.Namespace, kernel: Kernel) -> int:
    record = _registry(kernel).state.get(args.policy_id)
    if record is None:
        print(f"kernel policy show: no policy {args.policy_id!r}", file=sys.stderr)
        return 1
    out: dict[str, Any] = {
        "id": record.policy_id,
        "versions": [p.to_json() for p in record.versions],
        "history": [h.to_json() for h in record.history],
    }
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def _list(args: argparse.Namespace, kernel: Kernel) -> int:
    registry = _registry(kernel)
    rows: list[dict[str, Any]] = [
        {
            "id": r.policy_id,
            "name": r.latest.name,
            "severity": r.latest.severity.value,
            "versions": {str(p.version): p.state.value for p in r.versions},
        }
        for r in sorted(registry.state.policies.values(), key=lambda r: r.policy_id)
    ]
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return 0
    print(f"{'ID':<32} {'SEVERITY':<9} VERSIONS")
    for row in rows:
        states = ", ".join(f"v{v}:{s}" for v, s in row["versions"].items())
        print(f"{row['id']:<32} {row['severity']:<9} {states}")
    if registry.rejected:
        print(f"({len(registry.rejected)} illegal change(s) on the log were skipped)")
    return 0


def _simulate(args: argparse.Namespace, kernel: Kernel) -> int:
    window = _window(args)
    if args.workers < 1:
        raise ValidationError("must be at least 1", field="workers")
    registry = _registry(kernel)
    candidate = _candidate(registry, args.policy)
    event, where = _run_simulation(
        kernel, registry, candidate, window, args.actor, workers=args.workers
    )
    if args.json:
        print(json.dumps(event.to_json(), indent=2, ensure_ascii=False))
    else:
        _print_report(event.body, where)
    return 0


def _run_simulation(
    kernel: Kernel,
    registry: PolicyRegistry,
    candidate: Policy,
    window: Window,
    actor: str,
    *,
    workers: int,
) -> tuple[Event, str]:
    """Simulate ``candidate`` over ``window`` of the actions; publish the report event."""
    from schemas.events import new_event, now_ms  # noqa: PLC0415
    from streams.sentinel.kafka_history import (  # noqa: PLC0415
        HistoryJob,
        simulate_history,
        window_ranges,
    )

    live = registry.state.live()
    sets = simulation_set(live, candidate)  # refuses a candidate it cannot simulate
    topic = kernel.names.actions
    ranges = window_ranges(kernel.offsets(), topic, window, now_ms())
    codec: functools.partial[EventCodec] = functools.partial(_codec, kernel.settings)
    job = HistoryJob(kernel.kafka, codec, topic, live, candidate)
    tally = simulate_history(job, ranges, workers=workers)
    body = report_body(
        str(uuid.uuid4()),
        candidate,
        actions_topic=topic,
        window=window,
        ranges=ranges,
        sets=sets,
        tally=tally,
    )
    event = new_event("policySimulation", actor, candidate.policy_id, body)
    with kernel.producer() as producer:
        position = producer.publish(event)
    return event, f"{event.event_id} at {position}"


def _codec(settings: Settings) -> EventCodec:
    """A simulation worker's codec, built in its own process from the settings."""
    return bootstrap(settings).codec


def _window(args: argparse.Namespace) -> Window:
    if args.since is not None:
        return Window(since_ms=parse_duration(args.since))
    if args.last is not None:
        return Window(last=args.last)
    return Window(offsets=parse_offsets(args.from_offsets))


def _candidate(registry: PolicyRegistry, spec: str) -> Policy:
    policy_id, sep, version = spec.partition("@")
    record = registry.state.get(policy_id)
    if record is None:
        raise ValidationError(f"no policy {policy_id!r} on the log", field="policy")
    if not sep:
        return record.latest
    if not version.isdigit():
        raise ValidationError(f"{version!r} is not a version number", field="policy")
    found = next((p for p in record.versions if p.version == int(version)), None)
    if found is None:
        have = ", ".join(f"v{p.version}" for p in record.versions)
        raise ValidationError(f"{policy_id} has no v{version} (it has {have})", field="policy")
    return found


def _print_report(body: dict[str, Any], where: str) -> None:
    r = body["report"]
    changes = r["changes"]
    print(f"simulation {body['simulationId']} of {body['policyId']} v{body['version']} ({where})")
    print(f"  events evaluated   {r['eventsEvaluated']} ({r['recordsSkipped']} skipped)")
    print(f"  candidate in scope {r['candidateInScope']}, matched {r['candidateMatched']} "
          f"(match rate {r['matchRate']:.2%}), errors {r['errors']}")  # fmt: skip
    for who in ("active", "candidate"):
        counts = ", ".join(f"{k} {n}" for k, n in r["decisions"][who].items()) or "-"
        print(f"  {who + ' decisions':<18} {counts}")
    print(f"  changed            {changes['total']}")
    for kind in ("newlyDenied", "newlyAllowed", "changed"):
        c = changes[kind]
        if not c["count"]:
            continue
        print(f"    {kind}: {c['count']}")
        for dim in ("byActor", "bySubject", "byAction"):
            top = ", ".join(f"{e['key']} {e['count']}" for e in c[dim]["top"][:5])
            print(f"      {dim:<10} {top}")
