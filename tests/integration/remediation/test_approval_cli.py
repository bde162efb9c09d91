"""``kernel remediation`` as an operator drives it, with the worker on real Kafka.

A high-risk remediation waits (no call) until ``approve``; a rejected one
never calls and cannot be approved after; an unknown action and a repeated
request are refused or reported. The CLI runs in-process (``ops.cli.main``
with the test's environment), the worker as the composition root builds it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from ops.bootstrap import Kernel
from ops.cli import main
from tests.e2e.conftest import settings_env
from tests.integration.remediation.receiver import SECRET, Receiver, serving


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["remediation", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_high_risk_waits_for_approve_and_reject_stops_it(
    kernel: Kernel,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with serving() as receiver:
        _scenario(kernel, tmp_path, monkeypatch, capsys, receiver)


def _scenario(
    kernel: Kernel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], receiver: Receiver,
) -> None:  # fmt: skip
    actions = tmp_path / "actions.json"
    actions.write_text(
        json.dumps(
            {
                "page": {
                    "type": "webhook",
                    "url": receiver.url,
                    "timeoutS": 2,
                    "retries": 1,
                    "secretEnv": "HOOK_SECRET",
                    "highRisk": True,
                },
            }
        )
    )
    for name in list(os.environ):
        if name.startswith("KERNEL_"):
            monkeypatch.delenv(name)
    for name, value in settings_env(kernel.settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KERNEL_REMEDIATION_ACTIONS", str(actions))
    monkeypatch.setenv("HOOK_SECRET", SECRET.decode())
    runner = Kernel(replace(kernel.settings, remediation_actions=actions)).remediation()
    try:
        _steps(capsys, receiver, lambda: runner.run_until_idle(idle_s=0.5, max_s=60))
    finally:
        runner.close()


def _steps(
    capsys: pytest.CaptureFixture[str], receiver: Receiver, drain: Callable[[], object]
) -> None:

    request = ["request", "--action", "page", "--subject", "acct-1", "--reason", "card testing"]
    code, out, _ = _cli(capsys, *request, "--decision", "d1", "--actor", "ann")
    assert code == 0 and "waits for approval" in out, out
    rid = out.split()[2]
    drain()
    assert receiver.deliveries == {}
    code, out, _ = _cli(capsys, "list", "--status", "requested")
    assert rid in out

    code, out, _ = _cli(capsys, "approve", rid, "--reason", "confirmed", "--actor", "bo")
    assert (code, out.strip()) == (0, f"approved remediation {rid}")
    drain()
    assert receiver.effects == {"d1:page": 1}
    code, out, _ = _cli(capsys, "show", rid)
    shown = json.loads(out)
    assert shown["status"] == "applied"
    assert shown["decisions"] == [{"actor": "bo", "approve": True, "reason": "confirmed"}]
    assert shown["outcome"]["httpStatus"] == 200

    code, out, _ = _cli(capsys, "request", "--action", "page", "--subject", "acct-1",
                        "--reason", "again", "--decision", "d1")  # fmt: skip
    assert code == 0 and "already applied: not requested again" in out

    code, out, _ = _cli(capsys, "request", "--action", "page", "--subject", "acct-2",
                        "--reason", "maybe", "--decision", "d2")  # fmt: skip
    rid2 = out.split()[2]
    code, out, _ = _cli(capsys, "reject", rid2, "--reason", "false positive")
    assert code == 0
    drain()
    code, out, err = _cli(capsys, "approve", rid2)
    assert code == 2 and f"remediation {rid2} is rejected, not waiting for a decision" in err
    assert receiver.deliveries == {"d1:page": 1}

    code, _, err = _cli(capsys, "request", "--action", "nope", "--subject", "s", "--reason", "r")
    assert code == 2 and "unknown action; known: page" in err
    code, out, _ = _cli(capsys, "show", "00000000-0000-0000-0000-000000000000")
    assert code == 1
