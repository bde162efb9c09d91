"""``kernel policy``: changes validated against the registry rebuilt from Kafka, then published."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ops.bootstrap import Kernel
from ops.cli import build_parser
from streams.sentinel.errors import RuleError, TransitionError
from streams.sentinel.kafka_registry import load_registry
from streams.sentinel.policy import State

POLICY = {
    "id": "payments-large",
    "name": "Large transfers",
    "severity": "HIGH",
    "scope": {"eventTypes": ["kernelAction"], "actions": ["payments.*"]},
    "rule": "context.amount > 10000",
    "effect": "escalate",
    "rationale": "{actor} moved {context.amount}",
}


def run(kernel: Kernel, *argv: str) -> int:
    args = build_parser().parse_args(["policy", *argv])
    code: int = args.func(args, kernel)
    return code


def test_policy_lifecycle_through_the_log(
    kernel: Kernel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "p.json"
    f.write_text(json.dumps(POLICY))
    assert run(kernel, "create", str(f), "--actor", "alice", "--reason", "initial") == 0
    with pytest.raises(TransitionError, match="already exists"):
        run(kernel, "create", str(f), "--actor", "alice")
    for state in ("test", "canary", "active"):
        extra = ["--percent", "10"] if state == "canary" else []
        assert (
            run(kernel, "transition", "payments-large", "1", state, "--actor", "bob", *extra) == 0
        )
    with pytest.raises(TransitionError, match="not allowed"):
        run(kernel, "transition", "payments-large", "1", "test", "--actor", "bob")
    f.write_text(json.dumps(dict(POLICY, rule="context.amount > 5000")))
    assert run(kernel, "version", str(f), "--actor", "carol") == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(POLICY, id="other", rule="context.amount > ")))
    with pytest.raises(RuleError):
        run(kernel, "create", str(bad), "--actor", "alice")
    capsys.readouterr()

    assert run(kernel, "show", "payments-large") == 0
    shown = json.loads(capsys.readouterr().out)
    assert [v["state"] for v in shown["versions"]] == ["active", "draft"]
    assert [(h["change"], h["actor"]) for h in shown["history"]] == [
        ("created", "alice"),
        ("transitioned", "bob"),
        ("transitioned", "bob"),
        ("transitioned", "bob"),
        ("versioned", "carol"),
    ]
    assert shown["history"][0]["reason"] == "initial"
    assert run(kernel, "list", "--json") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == [
        {
            "id": "payments-large",
            "name": "Large transfers",
            "severity": "HIGH",
            "versions": {"1": "active", "2": "draft"},
        }
    ]
    registry = load_registry(kernel.settings.kafka_bootstrap, kernel.codec, kernel.names.policies)
    assert registry.applied == 5
    assert registry.rejected == []
    assert [cp.policy.state for cp in registry.policy_set.policies] == [State.ACTIVE]
    assert run(kernel, "show", "nope") == 1
