"""``kernel approvers …``, ``kernel approvals …`` and ``kernel approve``: k-of-n approvals.

- ``kernel approvers keygen ID`` writes an approver's key file (the format of
  ``kernel keys generate``, under ``KERNEL_STATE_DIR/approver-keys`` unless
  ``--dir``) and prints its registry entry; ``approvers genesis FILE``
  publishes the initial registry (once); ``approvers show`` prints the
  registry (``--version N``: as it was) -- the ``--approvers`` file of the
  offline check; ``approvers propose add|remove|threshold`` requests a change,
  which a quorum of the current registry must approve.
- ``kernel approvals request POLICY VERSION`` asks for the activation of a
  policy version; ``approvals list`` shows pending requests; ``approvals show
  ID`` a request, its approvals judged now and its quorum; ``approvals verify
  ID --approvers FILE`` re-checks a quorum offline (every signature, expiry at
  the quorum's time, distinctness, k), from the log or from ``--quorum FILE``.
- ``kernel approve ID --key FILE`` signs the request's statement and submits
  it; the approval that completes the quorum also publishes the quorum event.

Exit codes: 0 done, 1 a check failed (no quorum, a refused approval), 2 an error.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from ops.approvals import load_approvals, now_ms
from ops.bootstrap import Kernel
from ops.commands import Subparsers
from schemas.events import Event
from streams.approvals.errors import ApprovalError, RegistryError
from streams.approvals.log import (
    ApprovalRefusedError,
    ApprovalsLog,
    QuorumRecord,
    activation_request,
    genesis_event,
    plan_submission,
    request_event,
)
from streams.approvals.quorum import ApprovalRequest, check_quorum
from streams.approvals.registry import (
    APPROVERS_SUBJECT,
    add_action,
    parse_registry,
    remove_action,
    threshold_action,
)
from streams.approvals.statement import DAY_MS, sign_statement
from streams.chain.keys import generate_key, load_signer
from streams.chain.signing import b64, unb64

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    _register_approvers(sub)
    _register_approvals(sub)
    a = sub.add_parser("approve", help="sign and submit an approval of a pending request")
    a.add_argument("request_id")
    a.add_argument("--key", type=Path, required=True, help="the approver's key file")
    a.add_argument("--approver", help="approver id (default: the key file's signerId)")
    a.add_argument("--ttl-days", type=int, help="validity (default KERNEL_APPROVAL_TTL_DAYS)")
    a.add_argument("--actor", help="who submits it (recorded; default cli:<approver>)")
    a.set_defaults(func=_approve)


def _register_approvers(sub: Subparsers) -> None:
    p = sub.add_parser("approvers", help="the approvers registry (keys, genesis, changes)")
    cmds = p.add_subparsers(dest="approvers_command", required=True, metavar="ACTION")
    k = cmds.add_parser("keygen", help="write an approver key file and print its registry entry")
    k.add_argument("approver_id")
    k.add_argument("--dir", type=Path, help="default: KERNEL_STATE_DIR/approver-keys")
    k.set_defaults(func=_keygen)
    g = cmds.add_parser("genesis", help="publish the initial registry from a file (once)")
    g.add_argument("file", type=Path)
    g.add_argument("--actor", required=True, help="who publishes it (recorded)")
    g.set_defaults(func=_genesis)
    s = cmds.add_parser("show", help="the registry as JSON (the --approvers file)")
    s.add_argument("--version", type=int, help="the registry as it was at this version")
    s.set_defaults(func=_show_registry)
    pr = cmds.add_parser("propose", help="request a registry change (a quorum approves it)")
    pr.add_argument("change", choices=["add", "remove", "threshold"])
    pr.add_argument("value", help="approver id (add, remove) or k (threshold)")
    pr.add_argument("--public-key", help="add: the approver's base64 public key")
    pr.add_argument("--key-file", type=Path, help="add: read the public key from a key file")
    pr.add_argument("--actor", required=True)
    pr.add_argument("--reason")
    pr.set_defaults(func=_propose)


def _register_approvals(sub: Subparsers) -> None:
    p = sub.add_parser("approvals", help="approval requests, their approvals and quorums")
    cmds = p.add_subparsers(dest="approvals_command", required=True, metavar="ACTION")
    r = cmds.add_parser("request", help="request approval to activate a policy version")
    r.add_argument("policy_id")
    r.add_argument("version", type=int)
    r.add_argument("--actor", required=True)
    r.add_argument("--reason")
    r.set_defaults(func=_request)
    ls = cmds.add_parser("list", help="pending requests (JSON lines)")
    ls.set_defaults(func=_list)
    s = cmds.add_parser("show", help="a request, its approvals judged now, and its quorum")
    s.add_argument("request_id")
    s.set_defaults(func=_show)
    v = cmds.add_parser("verify", help="re-check a quorum offline against an approvers file")
    v.add_argument("request_id")
    v.add_argument("--approvers", type=Path, required=True, help="`kernel approvers show` output")
    v.add_argument("--quorum", type=Path, help="the quorum document (`approvals show`); no log")
    v.set_defaults(func=_verify)


def _publish(kernel: Kernel, events: list[Event] | tuple[Event, ...]) -> None:
    with kernel.producer() as producer:
        producer.publish_batch(list(events), topic=kernel.names.approvals)


def _print(doc: Any) -> None:
    print(json.dumps(doc, indent=2, ensure_ascii=False))


# -- approvers -----------------------------------------------------------------------


def _keygen(args: argparse.Namespace, kernel: Kernel) -> int:
    directory = args.dir or kernel.settings.state_dir / "approver-keys"
    path = generate_key(directory, args.approver_id)
    signer = load_signer(path)
    print(f"wrote {path}", file=sys.stderr)
    _print({"approverId": args.approver_id, "publicKey": b64(signer.public_key)})
    return 0


def _genesis(args: argparse.Namespace, kernel: Kernel) -> int:
    try:
        registry = parse_registry(json.loads(args.file.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as exc:
        raise RegistryError(f"cannot read {args.file}: {exc}") from exc
    if load_approvals(kernel).registry is not None:
        raise RegistryError("the approvers registry already has its genesis; propose changes")
    _publish(kernel, [genesis_event(registry, args.actor)])
    print(f"approvers registry v1: {registry.size} approver(s), k={registry.threshold}")
    return 0


def _show_registry(args: argparse.Namespace, kernel: Kernel) -> int:
    log = load_approvals(kernel)
    registry = log.registries.get(args.version) if args.version else log.registry
    if registry is None:
        raise RegistryError("no such approvers registry on the log")
    _print(registry.to_json())
    return 0


def _propose(args: argparse.Namespace, kernel: Kernel) -> int:
    log = load_approvals(kernel)
    if log.registry is None:
        raise RegistryError("no approvers registry on the log; run `kernel approvers genesis`")
    if args.change == "add":
        if args.key_file:
            key = load_signer(args.key_file).public_key
        elif args.public_key:
            key = unb64(args.public_key)
        else:
            raise RegistryError("add needs --public-key or --key-file")
        action = add_action(args.value, key)
    elif args.change == "remove":
        action = remove_action(args.value)
    else:
        action = threshold_action(int(args.value))
    log.registry.apply(action)  # refused here if it is illegal now
    request = ApprovalRequest(
        _new_id(), "approvers", APPROVERS_SUBJECT, action, log.registry.version, args.actor,
        reason=args.reason,
    )  # fmt: skip
    _publish(kernel, [request_event(request)])
    print(f"request {request.request_id}: approvers {action} on registry v{request.version}")
    return 0


def _new_id() -> str:
    return str(uuid.uuid4())


# -- approvals -----------------------------------------------------------------------


def _request(args: argparse.Namespace, kernel: Kernel) -> int:
    request = activation_request(args.policy_id, args.version, args.actor, args.reason)
    _publish(kernel, [request_event(request)])
    print(f"request {request.request_id}: {request.subject} {request.action} v{request.version}")
    return 0


def _list(_args: argparse.Namespace, kernel: Kernel) -> int:
    log = load_approvals(kernel)
    for request in log.pending():
        doc = request.to_json()
        if log.registry is not None:
            doc["quorum"] = log.check(request.request_id, now_ms()).to_json()
        print(json.dumps(doc, ensure_ascii=False))
    return 0


def _show(args: argparse.Namespace, kernel: Kernel) -> int:
    log = load_approvals(kernel)
    request = _need_request(log, args.request_id)
    quorum = log.quorums.get(args.request_id)
    doc: dict[str, Any] = {"request": request.to_json(), "quorum": quorum and quorum.to_json()}
    if quorum is None and log.registry is not None:
        doc["now"] = log.check(args.request_id, now_ms()).to_json()
    _print(doc)
    return 0


def _need_request(log: ApprovalsLog, request_id: str) -> ApprovalRequest:
    request = log.requests.get(request_id)
    if request is None:
        raise ApprovalError(f"no approval request {request_id!r} on the log")
    return request


def _verify(args: argparse.Namespace, kernel: Kernel) -> int:
    try:
        registry = parse_registry(json.loads(args.approvers.read_text(encoding="utf-8")))
        if args.quorum:
            doc = json.loads(args.quorum.read_text(encoding="utf-8"))
            record = QuorumRecord.from_json(doc.get("quorum", doc))
        else:
            found = load_approvals(kernel).quorums.get(args.request_id)
            if found is None:
                print(f"FAIL: no quorum for request {args.request_id} on the log")
                return 1
            record = found
    except (OSError, json.JSONDecodeError) as exc:
        raise ApprovalError(f"cannot read: {exc}") from exc
    if record.request.request_id != args.request_id:
        print(f"FAIL: the quorum is for request {record.request.request_id}, not {args.request_id}")
        return 1
    if registry.version != record.registry_version:
        print(
            f"FAIL: the quorum rests on registry v{record.registry_version}, the approvers "
            f"file is v{registry.version} (kernel approvers show --version "
            f"{record.registry_version})"
        )
        return 1
    result = check_quorum(record.request, record.approvals, registry, record.at_ms)
    # a quorum event lists only approvals that count: any refused one means it was altered
    ok = result.reached and not result.rejected
    print(("OK: " if ok else "FAIL: ") + result.explain())
    return 0 if ok else 1


def _approve(args: argparse.Namespace, kernel: Kernel) -> int:
    signer = load_signer(args.key)
    approver = args.approver or signer.signer_id
    log = load_approvals(kernel)
    request = _need_request(log, args.request_id)
    now = now_ms()
    ttl = (args.ttl_days or kernel.settings.approval_ttl_days) * DAY_MS
    approval = sign_statement(signer, request.statement(now + ttl), approver)
    try:
        submission = plan_submission(
            log, args.request_id, approval, args.actor or f"cli:{approver}", now
        )
    except ApprovalRefusedError as exc:
        print(f"kernel approve: refused: {exc}", file=sys.stderr)
        return 1
    with kernel.producer() as producer:  # by type: a remediation's quorum decision too
        producer.publish_batch(list(submission.events))
    print(submission.result.explain())
    return 0
