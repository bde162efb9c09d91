"""A high-risk remediation approved by a k-of-n quorum (issues 12.3 + 12.4), on real Kafka.

An operator requests a high-risk remediation and asks the approvers
(``kernel remediation request-quorum``); two approvals leave it waiting, the
third completes the quorum, whose approval step the worker then acts on: the
webhook takes effect once, and the remediation's decisions name the quorum.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ops.bootstrap import Kernel
from streams.approvals.statement import Statement, sign_statement
from streams.chain.keys import load_signer
from tests.integration.approvals.test_quorum_on_the_log import run, setup_registry
from tests.integration.remediation.receiver import serving
from tests.integration.remediation.test_from_decisions import Cli, _environment
from tests.integration.sentinel.api_helpers import serve


def test_a_quorum_approves_a_high_risk_remediation_and_k_minus_1_does_not(
    kernel: Kernel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    cli = Cli(capsys)
    with serving() as receiver:
        actions = tmp_path / "actions.json"
        hook = {"type": "webhook", "url": receiver.url, "timeoutS": 2, "retries": 1,
                "secretEnv": "HOOK_SECRET", "highRisk": True}  # fmt: skip
        actions.write_text(json.dumps({"page": hook}))
        _environment(kernel, actions, monkeypatch)
        keys = setup_registry(kernel, tmp_path, capsys)  # 5 approvers, 3 needed
        worker = Kernel(replace(kernel.settings, remediation_actions=actions)).remediation()
        try:
            code, out, _ = cli("request", "--action", "page", "--subject", "acct-9",
                               "--reason", "fraud ring", "--decision", "dq")  # fmt: skip
            assert code == 0 and "waits for approval" in out, out
            rid = out.split()[2]
            code, out, _ = cli("request-quorum", rid, "--reason", "page the on-call")
            assert code == 0, out
            request_id = out.split()[2]
            # asking twice names the same request
            assert cli("request-quorum", rid)[1].split()[2] == request_id

            def key(i: int) -> str:
                return str(keys / f"approver-{i}.ed25519.json")

            for i in (0, 1, 1):  # two distinct approvers; the repeat counts once
                run(kernel, "approve", request_id, "--key", key(i))
            worker.run_until_idle(idle_s=0.5)
            assert receiver.deliveries == {}
            assert json.loads(cli("show", rid)[1])["status"] == "requested"

            # the third, over HTTP (the API publishes the remediation's step by type)
            signer = load_signer(Path(key(2)))
            st = Statement("remediation:dq:page", "page", 1, expires_at_ms=4_102_444_800_000)
            body = {"approverId": signer.signer_id, "expiresAt": st.expires_at_ms,
                    "signature": sign_statement(signer, st).signature}  # fmt: skip

            async def submit() -> tuple[int, dict[str, Any]]:
                async with serve(kernel.api()) as c:
                    r = await c.post(f"/approvals/requests/{request_id}/approvals", json=body)
                    return r.status_code, r.json()

            status, answer = asyncio.run(submit())
            assert status == 201 and answer["quorum"]["reached"], answer
            worker.run_until_idle(idle_s=0.5)
        finally:
            worker.close()
    assert receiver.effects == {"dq:page": 1}
    shown = json.loads(cli("show", rid)[1])
    assert shown["status"] == "applied"
    (decision,) = shown["decisions"]
    assert decision["actor"] == f"quorum:{request_id}" and decision["approve"] is True
