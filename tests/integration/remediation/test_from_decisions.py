"""From the sentinel's real decisions, and operators' commands, to remediations on Kafka.

A LOW ``remediate`` policy's decision is applied at once (the webhook and the
quarantine); a HIGH one's waits until a human approves it with ``kernel
remediation approve``, and one rejected with ``reject`` never runs. The
decisions are the streaming sentinel's own policyChecks, so the fields the
worker reads (policyId, simMode, the deciding policy's severity in the
evaluation path) are the ones the sentinel writes. Then an operator's
request: a repeat, an unknown action and a decision on a finished
remediation are refused or reported. The CLI runs in-process
(``ops.cli.main`` with the test's environment); the worker is one runner
built by the composition root, drained between the steps.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from ops.bootstrap import Kernel
from ops.cli import main
from schemas.events import new_event
from streams.sentinel.policy import Effect, Policy, Scope, Severity
from tests.e2e.conftest import settings_env
from tests.integration.core.test_producer import read_all
from tests.integration.remediation.receiver import SECRET, serving
from tests.integration.sentinel.test_stream_runner import activate


def _policy(policy_id: str, severity: Severity, rule: str) -> Policy:
    return Policy(
        policy_id=policy_id, version=1, name=policy_id, severity=severity,
        scope=Scope(("kernelAction",), actions=("payments.*",)), rule=rule,
        effect=Effect.REMEDIATE, rationale="{actor} moved {context.amount}",
    )  # fmt: skip


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["remediation", *args])
        out = self.capsys.readouterr()
        return code, out.out, out.err


def _environment(kernel: Kernel, actions: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("KERNEL_"):
            monkeypatch.delenv(name)
    for name, value in settings_env(kernel.settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KERNEL_REMEDIATION_ACTIONS", str(actions))
    monkeypatch.setenv("HOOK_SECRET", SECRET.decode())


def test_decisions_and_operators_through_the_worker_and_the_cli(
    kernel: Kernel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    cli = Cli(capsys)
    with serving() as receiver:
        actions = tmp_path / "actions.json"
        hook = {"type": "webhook", "url": receiver.url, "timeoutS": 2, "retries": 1}
        page = {**hook, "secretEnv": "HOOK_SECRET", "policies": ["pay-*"]}
        quarantine = {"type": "quarantine", "policies": ["pay-*"]}
        actions.write_text(json.dumps({"page": page, "quarantine": quarantine}))
        _environment(kernel, actions, monkeypatch)
        events = [
            *activate(_policy("pay-small", Severity.LOW, "context.amount < 10")),
            *activate(_policy("pay-big", Severity.HIGH, "context.amount > 1000")),
        ]
        for subject, amount in (("acct-s", 5), ("acct-b", 5000), ("acct-n", 50)):
            body = {"action": "payments.send", "context": {"amount": amount}}
            events.append(new_event("kernelAction", "agent:1", subject, body))
        with kernel.producer() as producer:
            producer.publish_batch(events)
        sentinel = kernel.sentinel()
        worker = Kernel(replace(kernel.settings, remediation_actions=actions)).remediation()

        def drain() -> None:
            worker.run_until_idle(idle_s=0.5)

        try:
            sentinel.run_until_idle(idle_s=0.3)
            drain()
            checks = {e.subject: e for _, e, _ in read_all(kernel, kernel.names.policy_checks)}
            small, big = (checks[s].body["policyCheckId"] for s in ("acct-s", "acct-b"))
            assert checks["acct-n"].body["decision"] == "allow"
            # LOW: both actions applied, no human asked; the webhook took effect once
            assert receiver.effects == {f"{small}:page": 1}
            code, out, _ = cli("list", "--json")
            view = {v["idempotencyKey"]: v for v in map(json.loads, out.splitlines())}
            assert {k: v["status"] for k, v in view.items()} == {
                f"{small}:page": "applied",
                f"{small}:quarantine": "applied",
                f"{big}:page": "requested",
                f"{big}:quarantine": "requested",
            }
            assert view[f"{big}:page"]["highRisk"] and not view[f"{small}:page"]["highRisk"]
            # HIGH: a human approves the page and rejects the quarantine
            page_id = view[f"{big}:page"]["remediationId"]
            quarantine_id = view[f"{big}:quarantine"]["remediationId"]
            code, out, _ = cli("approve", page_id, "--reason", "confirmed", "--actor", "bo")
            assert (code, out.strip()) == (0, f"approved remediation {page_id}")
            code, _, _ = cli("reject", quarantine_id, "--reason", "false positive")
            assert code == 0
            drain()
            code, out, _ = cli("list", "--status", "rejected")
            assert out.split() == [quarantine_id, "rejected", "quarantine", "acct-b"]
            code, out, err = cli("approve", quarantine_id)
            assert code == 2
            assert f"remediation {quarantine_id} is rejected, not waiting for a decision" in err
            code, out, _ = cli("show", page_id)
            shown = json.loads(out)
            assert shown["status"] == "applied"
            assert shown["decisions"] == [{"actor": "bo", "approve": True, "reason": "confirmed"}]
            assert shown["outcome"]["httpStatus"] == 200

            # An operator's request: high-risk by flag, approved, applied; a repeat reported
            request = ["request", "--action", "page", "--subject", "acct-1", "--reason", "r"]
            code, out, _ = cli(*request, "--decision", "d1", "--high-risk", "--actor", "ann")
            assert code == 0 and "waits for approval" in out, out
            rid = out.split()[2]
            drain()
            assert "d1:page" not in receiver.deliveries
            assert cli("approve", rid)[0] == 0
            drain()
            code, out, _ = cli(*request, "--decision", "d1")
            assert code == 0 and f"remediation {rid} already applied: not requested again" in out
        finally:
            sentinel.close()
            worker.close()
    assert receiver.effects == {f"{small}:page": 1, f"{big}:page": 1, "d1:page": 1}
    assert sum(receiver.deliveries.values()) == 3
    code, _, err = cli("request", "--action", "nope", "--subject", "s", "--reason", "r")
    assert code == 2 and "unknown action; known: page, quarantine" in err
    assert cli("show", "00000000-0000-0000-0000-000000000000")[0] == 1

    steps: dict[str, list[str]] = {}
    for _, event, _ in read_all(kernel, kernel.names.for_event_type("remediation")):
        steps.setdefault(event.body["idempotencyKey"], []).append(event.body["status"])
    assert steps == {
        f"{small}:page": ["requested", "approved", "started", "applied"],
        f"{small}:quarantine": ["requested", "approved", "started", "applied"],
        f"{big}:page": ["requested", "approved", "started", "applied"],
        f"{big}:quarantine": ["requested", "rejected"],
        "d1:page": ["requested", "approved", "started", "applied"],
    }
    quarantined = [
        e.subject for _, e, _ in read_all(kernel, kernel.names.actions)
        if e.body["action"] == "kernel.quarantine"
    ]  # fmt: skip
    assert quarantined == ["acct-s"]
