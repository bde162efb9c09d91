"""k-of-n approvals on real Kafka and Postgres: a HIGH activation needs 3 of 5.

Five approvers get key files (``kernel approvers keygen``), the registry's
genesis goes on the log, a HIGH policy reaches canary and its activation is
requested. With two approvals the CLI refuses the activation, and an
activation published behind the CLI's back is skipped by the registry
projection (``policy_change_rejections``); a duplicate approval is refused.
The third approval publishes the quorum event; the activation is then
accepted by the CLI and the projection, and the quorum verifies offline from
the exported files (and fails when one signature is altered). The HTTP routes
list the pending request and take a signed approval, refusing a forged one.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ops.approvals import activation_gate
from ops.bootstrap import Kernel
from ops.cli import build_parser
from projections.migrate import migrate
from projections.sentinel_queries import get_policy
from streams.approvals.errors import RegistryError
from streams.approvals.statement import Statement, sign_statement
from streams.chain.keys import load_signer
from streams.kafka.broadcast import BroadcastInput
from streams.sentinel.errors import TransitionError
from streams.sentinel.kafka_registry import load_registry, read_policy_changes
from streams.sentinel.lifecycle import plan_transition
from streams.sentinel.policy import State
from streams.sentinel.registry import PolicyRegistry
from tests.integration.core.test_producer import read_all
from tests.integration.sentinel.api_helpers import serve
from tests.integration.sentinel.test_projections import project

POLICY = {
    "id": "payments-huge",
    "name": "Huge transfers",
    "severity": "HIGH",
    "scope": {"eventTypes": ["kernelAction"], "actions": ["payments.*"]},
    "rule": "context.amount > 1000000",
    "effect": "deny",
    "rationale": "{actor} moved {context.amount}",
}


def run(kernel: Kernel, *argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    code: int = args.func(args, kernel)
    return code


def out_json(capsys: pytest.CaptureFixture[str]) -> Any:
    return json.loads(capsys.readouterr().out)


def setup_registry(kernel: Kernel, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    keys = tmp_path / "keys"
    entries = []
    for i in range(5):
        assert run(kernel, "approvers", "keygen", f"approver-{i}", "--dir", str(keys)) == 0
        entries.append(out_json(capsys))
    genesis = tmp_path / "genesis.json"
    genesis.write_text(json.dumps({"threshold": 3, "approvers": entries}))
    assert run(kernel, "approvers", "genesis", str(genesis), "--actor", "ops") == 0
    capsys.readouterr()
    return keys


def to_canary(kernel: Kernel, tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text(json.dumps(POLICY))
    assert run(kernel, "policy", "create", str(f), "--actor", "alice") == 0
    assert run(kernel, "policy", "transition", "payments-huge", "1", "test", "--actor", "bob") == 0
    assert (
        run(kernel, "policy", "transition", "payments-huge", "1", "canary", "--actor", "bob",
            "--percent", "5")
        == 0
    )  # fmt: skip


def request(kernel: Kernel, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert run(kernel, "approvals", "request", "payments-huge", "1", "--actor", "alice") == 0
    return capsys.readouterr().out.split()[1].rstrip(":")


def approve(kernel: Kernel, keys: Path, i: int, request_id: str) -> int:
    key = keys / f"approver-{i}.ed25519.json"
    return run(kernel, "approve", request_id, "--key", str(key))


def activate(kernel: Kernel) -> int:
    return run(kernel, "policy", "transition", "payments-huge", "1", "active", "--actor", "bob")


def streamed(kernel: Kernel) -> State:
    """Version 1's state as the streaming sentinel folds its broadcast topics."""
    runner = kernel.sentinel()  # as `kernel run sentinel` builds it
    processor = runner.processor.inner  # type: ignore[attr-defined]
    runner.close()
    broadcast = BroadcastInput(kernel.kafka, kernel.codec, processor.broadcast_topics, timeout_s=10)
    try:
        state = broadcast.fold(processor.initial(), processor.absorb)
    finally:
        broadcast.close()
    return state.registry.state.get("payments-huge").version(1).state  # type: ignore[no-any-return]


def test_high_activation_refused_with_two_approvals_accepted_with_three(
    db_kernel: Kernel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kernel = db_kernel
    migrate(kernel.settings.database_url)
    keys = setup_registry(kernel, tmp_path, capsys)
    to_canary(kernel, tmp_path)
    request_id = request(kernel, capsys)
    assert approve(kernel, keys, 0, request_id) == 0
    assert approve(kernel, keys, 1, request_id) == 0
    assert approve(kernel, keys, 1, request_id) == 1  # a duplicate counts once: refused
    assert "duplicate approval" in capsys.readouterr().err

    with pytest.raises(TransitionError, match=r"needs a quorum of 3 of 5 approvers; no quorum"):
        activate(kernel)
    # published behind the CLI's back: the registry projection skips it and says why
    registry = load_registry(kernel.kafka, kernel.codec, kernel.names.policies)
    sneaky = plan_transition(registry.state, "payments-huge", 1, State.ACTIVE, "mallory")
    kernel.producer().publish(sneaky.to_event())
    project(kernel)
    with psycopg.connect(kernel.settings.database_url) as conn:
        shown = get_policy(conn, "payments-huge")
        (reason,) = conn.execute("SELECT reason FROM policy_change_rejections").fetchone() or ("",)
    assert shown is not None and [v["state"] for v in shown["versions"]] == ["canary"]
    assert "HIGH" in reason and "quorum of 3 of 5" in reason
    feed = PolicyRegistry(approvals_source=lambda: activation_gate(kernel))  # the API's fold
    feed.apply_events(read_policy_changes(kernel.kafka, kernel.codec, kernel.names.policies))
    assert feed.state.get("payments-huge").version(1).state is State.CANARY  # type: ignore[union-attr]
    assert feed.rejected and "no quorum yet" in feed.rejected[-1][1]
    assert streamed(kernel) is State.CANARY  # the streaming sentinel's fold, too

    capsys.readouterr()
    assert approve(kernel, keys, 2, request_id) == 0
    assert capsys.readouterr().out.startswith("quorum reached: ")
    assert activate(kernel) == 0
    project(kernel)
    with psycopg.connect(kernel.settings.database_url) as conn:
        shown = get_policy(conn, "payments-huge")
        rejected = conn.execute("SELECT count(*) FROM policy_change_rejections").fetchone()
    assert shown is not None and [v["state"] for v in shown["versions"]] == ["active"]
    assert rejected == (1,)  # the sneaky one stays refused; the approved one applied
    assert streamed(kernel) is State.ACTIVE

    # every step is on the audited approvals topic; the quorum lists what it rests on
    steps = [e.body for _, e, _ in read_all(kernel, kernel.names.approvals)]
    assert [b["kind"] for b in steps] == [
        "genesis",
        "request",
        "approval",
        "approval",
        "approval",
        "quorum",
    ]
    quorum = steps[-1]["detail"]
    assert [a["approverId"] for a in quorum["approvals"]] == [
        "approver-0",
        "approver-1",
        "approver-2",
    ]
    assert quorum["threshold"] == 3 and quorum["registryVersion"] == 1

    # offline: export the quorum and the registry, verify with no log at all
    capsys.readouterr()
    assert run(kernel, "approvals", "show", request_id) == 0
    qfile = tmp_path / "quorum.json"
    qfile.write_text(capsys.readouterr().out)
    assert run(kernel, "approvers", "show") == 0
    afile = tmp_path / "approvers.json"
    afile.write_text(capsys.readouterr().out)
    verify = ["approvals", "verify", request_id, "--approvers", str(afile), "--quorum", str(qfile)]
    assert run(kernel, *verify) == 0
    assert capsys.readouterr().out.startswith("OK: quorum reached")
    doc = json.loads(qfile.read_text())
    sig = doc["quorum"]["approvals"][1]["signature"]
    doc["quorum"]["approvals"][1]["signature"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    qfile.write_text(json.dumps(doc))
    assert run(kernel, *verify) == 1
    assert "approver-1: the signature does not verify" in capsys.readouterr().out


def test_http_lists_pending_and_takes_signed_approvals(
    kernel: Kernel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = setup_registry(kernel, tmp_path, capsys)
    request_id = request(kernel, capsys)
    signers = [load_signer(keys / f"approver-{i}.ed25519.json") for i in range(3)]
    app = kernel.api()

    async def scenario() -> list[tuple[int, dict[str, Any]]]:
        answers = []
        async with serve(app) as c:
            listed = (await c.get("/approvals/requests")).json()["requests"]
            assert [r["requestId"] for r in listed] == [request_id]
            statement = {"subject": "policy:payments-huge", "action": "activate", "version": 1}
            path = f"/approvals/requests/{request_id}/approvals"
            for i, s in enumerate(signers):
                st = Statement(**statement, expires_at_ms=4_102_444_800_000)
                approval = sign_statement(s, st)
                sig = approval.signature
                if i == 1:  # forged: approver-0's signature under approver-1's name
                    sig = sign_statement(signers[0], st).signature
                body = {"approverId": s.signer_id, "expiresAt": st.expires_at_ms, "signature": sig}
                r = await c.post(path, json=body)
                answers.append((r.status_code, r.json()))
            r = await c.post(
                path,
                json={
                    **body,
                    "signature": sign_statement(signers[1], st).signature,
                    "approverId": "approver-1",
                },
            )
            answers.append((r.status_code, r.json()))
            r = await c.get(f"/approvals/requests/{request_id}")
            answers.append((r.status_code, r.json()))
        return answers

    (ok0, body0), (forged, why), (ok2, body2), (ok1, body1), (shown, doc) = asyncio.run(scenario())
    assert (
        ok0 == 201
        and body0["quorum"]["counted"] == ["approver-0"]
        and body0["submittedBy"].startswith("token:")
    )
    assert forged == 422 and "approver-1: the signature does not verify" in why["reason"]
    assert ok2 == 201 and not body2["quorum"]["reached"]
    assert ok1 == 201 and body1["quorum"]["reached"] and body1["quorumEventId"]
    assert shown == 200 and doc["quorum"]["threshold"] == 3
    on_log = [e for _, e, _ in read_all(kernel, kernel.names.approvals)]
    assert [e.body["kind"] for e in on_log][-4:] == ["approval", "approval", "approval", "quorum"]
    assert {e.body["submittedBy"] for e in on_log[-4:]} == {body0["submittedBy"]}
    post = app.openapi()["paths"]["/approvals/requests/{request_id}/approvals"]["post"]
    assert post["x-kernel-roles"] == ["approver"]
    assert {"201", "401", "403", "404", "409", "422", "503"} <= set(post["responses"])


def test_a_registry_change_needs_a_quorum_of_the_current_registry(
    kernel: Kernel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = setup_registry(kernel, tmp_path, capsys)
    assert run(kernel, "approvers", "keygen", "approver-5", "--dir", str(keys)) == 0
    new_key = keys / "approver-5.ed25519.json"
    capsys.readouterr()
    add = ["approvers", "propose", "add", "approver-5", "--key-file", str(new_key)]
    assert run(kernel, *add, "--actor", "ops") == 0
    request_id = capsys.readouterr().out.split()[1].rstrip(":")
    assert run(kernel, "approve", request_id, "--key", str(new_key)) == 1  # not yet an approver
    assert "not in the approvers registry" in capsys.readouterr().err
    for i in range(3):
        assert approve(kernel, keys, i, request_id) == 0
    capsys.readouterr()
    assert run(kernel, "approvers", "show") == 0
    registry = out_json(capsys)
    assert registry["version"] == 2 and len(registry["approvers"]) == 6
    assert run(kernel, "approvers", "show", "--version", "1") == 0
    assert len(out_json(capsys)["approvers"]) == 5
    with pytest.raises(RegistryError, match="already has its genesis"):
        run(kernel, "approvers", "genesis", str(tmp_path / "genesis.json"), "--actor", "x")
