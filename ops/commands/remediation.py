"""``kernel remediation``: request, approve, reject, list and show remediations.

Each command writes one ``remediation`` event (the remediation worker,
``kernel run remediation``, acts on it) or reads the view folded from the
remediations topic (:mod:`replay.remediations`). ``approve`` and ``reject``
are the human decision a high-risk remediation waits for; they refuse a
remediation that is not waiting (exit 2, saying its status). The actor is
``--actor`` (default ``operator:<login>``). Exit 0 on success, 1 when
``show`` finds nothing, 2 on an error.
"""

from __future__ import annotations

import argparse
import getpass
import json
import uuid
from dataclasses import replace

from ops.bootstrap import Kernel
from ops.commands import Subparsers
from replay.remediations import remediation_view
from schemas.events import now_ms
from schemas.ids import uuid5_text
from streams.remediation.errors import RemediationRequestError
from streams.remediation.machine import RANK, Remediation, decision_event, request_event

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("remediation", help="request, approve, reject and list remediations")
    cmds = p.add_subparsers(dest="remediation_command", required=True, metavar="COMMAND")

    r = cmds.add_parser("request", help="request a registered action for a subject")
    r.add_argument("--action", required=True, help="a name in KERNEL_REMEDIATION_ACTIONS")
    r.add_argument("--subject", required=True, help="what to remediate (an actor, an account)")
    r.add_argument("--reason", required=True, help="why, for the record")
    r.add_argument(
        "--decision",
        help="the decision this remediates (with the action, the idempotency key; "
        "default a new id: a request never repeats by accident)",
    )
    r.add_argument("--high-risk", action="store_true", help="wait for approval whatever the action")
    r.add_argument("--policy-check", help="the policyCheck id it answers, if any")
    r.set_defaults(func=_request)

    for name, approve in (("approve", True), ("reject", False)):
        d = cmds.add_parser(name, help=f"{name} a remediation waiting for approval")
        d.add_argument("id", help="the remediation id (kernel remediation list --status requested)")
        d.add_argument("--reason", required=not approve, default="", help="why, for the record")
        d.set_defaults(func=_decide, approve=approve)

    q = cmds.add_parser(
        "request-quorum",
        help="ask the approvers (k of n) for a high-risk remediation; their quorum approves it",
    )
    q.add_argument("id", help="the remediation id (kernel remediation list --status requested)")
    q.add_argument("--reason", default=None, help="why, for the approvers")
    q.set_defaults(func=_request_quorum)

    ls = cmds.add_parser("list", help="remediations and their status, from the log")
    ls.add_argument("--status", choices=sorted(RANK), help="only remediations in this status")
    ls.add_argument("--json", action="store_true", help="JSON lines")
    ls.set_defaults(func=_list)

    show = cmds.add_parser("show", help="one remediation, as JSON")
    show.add_argument("id")
    show.set_defaults(func=_show)

    for name in ("request", "approve", "reject", "request-quorum"):
        cmds.choices[name].add_argument(
            "--actor", default=None, help="who does it (default operator:<login>)"
        )


# the approval request of a remediation derives from its key: one per remediation
_QUORUM_NS = uuid.UUID("0b7d5e91-2f4c-4a83-9c6e-8e1f3a5d7c20")


def _actor(args: argparse.Namespace) -> str:
    return args.actor or f"operator:{getpass.getuser()}"


def _view(kernel: Kernel) -> dict[str, Remediation]:
    reader = kernel.log_reader()
    try:
        book = remediation_view(reader, kernel.names.for_event_type("remediation"))
    finally:
        reader.close()
    return {item.remediation_id: item for item in book.items.values()}


def _request(args: argparse.Namespace, kernel: Kernel) -> int:
    actions = kernel.remediation_actions()
    if args.action not in actions:
        known = ", ".join(sorted(actions)) or "none registered (KERNEL_REMEDIATION_ACTIONS)"
        raise RemediationRequestError(f"unknown action; known: {known}", field="--action")
    event = request_event(
        decision_id=args.decision or str(uuid.uuid4()), action=args.action,
        subject=args.subject, actor=_actor(args), reason=args.reason,
        high_risk=args.high_risk or actions[args.action].high_risk, ts_ms=now_ms(),
        policy_check_id=args.policy_check,
    )  # fmt: skip
    existing = _view(kernel).get(event.body["remediationId"])
    if existing is not None:
        print(
            f"remediation {existing.remediation_id} already {existing.status}: not requested again"
        )
        return 0
    with kernel.producer() as producer:
        producer.publish(event)
    waits = " (high-risk: waits for approval)" if event.body["details"]["highRisk"] else ""
    print(f"requested remediation {event.body['remediationId']}{waits}")
    return 0


def _decide(args: argparse.Namespace, kernel: Kernel) -> int:
    item = _view(kernel).get(args.id)
    if item is None:
        raise RemediationRequestError(f"no remediation {args.id} on the log", field="id")
    if item.status != "requested":
        raise RemediationRequestError(
            f"remediation {args.id} is {item.status}, not waiting for a decision", field="id"
        )
    event = decision_event(
        item, approve=args.approve, actor=_actor(args), reason=args.reason, ts_ms=now_ms()
    )
    with kernel.producer() as producer:
        producer.publish(event)
    print(f"{event.body['status']} remediation {item.remediation_id}")
    return 0


def _request_quorum(args: argparse.Namespace, kernel: Kernel) -> int:
    """An approval request for the remediation (subject ``remediation:<key>``, its
    action, version 1); the approval completing its quorum also writes the
    remediation's ``approved`` step (``streams.approvals.log.plan_submission``)."""
    from ops.approvals import load_approvals  # noqa: PLC0415
    from streams.approvals.log import remediation_request  # noqa: PLC0415
    from streams.approvals.log import request_event as approval_request_event  # noqa: PLC0415

    item = _view(kernel).get(args.id)
    if item is None:
        raise RemediationRequestError(f"no remediation {args.id} on the log", field="id")
    if item.status != "requested":
        raise RemediationRequestError(
            f"remediation {args.id} is {item.status}, not waiting for a decision", field="id"
        )
    log = load_approvals(kernel)
    subject = f"remediation:{item.key}"
    known = [r for r in log.requests.values() if r.subject == subject]
    if known:
        print(f"approval request {known[0].request_id} already asks for remediation {args.id}")
        return 0
    request = replace(
        remediation_request(item.key, item.action, _actor(args), args.reason),
        request_id=uuid5_text(_QUORUM_NS, item.key),
        ts_ms=now_ms(),
    )
    with kernel.producer() as producer:
        producer.publish(approval_request_event(request))
    print(
        f"approval request {request.request_id} for remediation {args.id}: approvers sign it "
        f"with `kernel approve {request.request_id} --key FILE`; its quorum approves it"
    )
    return 0


def _list(args: argparse.Namespace, kernel: Kernel) -> int:
    for item in _view(kernel).values():
        if args.status and item.status != args.status:
            continue
        if args.json:
            print(json.dumps(item.to_json(), sort_keys=True))
        else:
            print(f"{item.remediation_id}  {item.status:<9}  {item.action}  {item.subject}")
    return 0


def _show(args: argparse.Namespace, kernel: Kernel) -> int:
    item = _view(kernel).get(args.id)
    if item is None:
        print(f"no remediation {args.id} on the log")
        return 1
    print(json.dumps(item.to_json(), indent=2, sort_keys=True))
    return 0
