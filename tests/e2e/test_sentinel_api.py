"""SentinelNet end to end: policies via the CLI, the stream worker and projectors
in-process, then the HTTP API (sync check, explain with read-your-writes, policies)."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from pathlib import Path
from typing import Any

from ops.bootstrap import Kernel
from ops.http.app import build_app
from projections.migrate import migrate
from schemas.events import new_event
from streams.sentinel.decision import check_id_for
from tests import identity
from tests.e2e.conftest import KernelCLI
from tests.integration.sentinel.api_helpers import serve

POLICY = {
    "id": "deny-big",
    "name": "Big transfers",
    "severity": "HIGH",
    "scope": {"eventTypes": ["kernelAction"], "actions": ["payments.*"]},
    "rule": "context.amount > 1000",
    "effect": "deny",
    "rationale": "{actor} moved {context.amount}, over 1000",
}


def project(kernel: Kernel) -> None:
    for runner in kernel.sentinel_projectors():
        runner.run_until_idle(idle_s=0.5)
        runner.close()


def test_sentinel_end_to_end(db_kernel: Kernel, db_cli: KernelCLI, tmp_path: Path) -> None:
    migrate(db_kernel.settings.database_url)
    f = tmp_path / "policy.json"
    f.write_text(json.dumps(POLICY))
    steps = [
        ("create", str(f), "--actor", "alice"),
        ("transition", "deny-big", "1", "test", "--actor", "bob"),
        ("transition", "deny-big", "1", "canary", "--percent", "10", "--actor", "bob"),
        ("transition", "deny-big", "1", "active", "--actor", "carol"),
    ]
    for step in steps:
        done = db_cli("policy", *step)
        assert done.returncode == 0, done.stderr

    action = new_event(
        "kernelAction", "agent:1", "acct-1", {"action": "payments.send", "context": {"amount": 7}}
    )
    (position,) = db_kernel.producer().publish_batch([action])
    stream = db_kernel.sentinel()
    stream.run_until_idle(idle_s=0.5)
    stream.close()
    project(db_kernel)

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with serve(build_app(db_kernel)) as c:
            check = await c.post(
                "/sentinel/check",
                json={"action": "payments.send", "actor": "agent:9",
                      "context": {"amount": 2500}, "requestId": "e2e-1"},
            )  # fmt: skip
            out["check"] = check.json()
            # read your own write: explain waits while the projector catches up
            projector = threading.Thread(target=project, args=(db_kernel,))
            projector.start()
            explained = await c.get(
                f"/sentinel/explain/{out['check']['policyCheckId']}", params={"wait_ms": 20000}
            )
            await asyncio.to_thread(projector.join)
            out["explain"] = (explained.status_code, explained.json())
            streamed = check_id_for(action.event_id, "stream", False)
            out["stream"] = (await c.get(f"/sentinel/explain/{streamed}")).json()
            out["policies"] = (await c.get("/policies")).json()
            out["policy"] = (await c.get("/policies/deny-big")).json()
            out["missing_policy"] = (await c.get("/policies/nope")).status_code
            unknown = await c.get(f"/sentinel/explain/{uuid.uuid4()}")
            out["unknown"] = (unknown.status_code, unknown.json())
            out["bad_id"] = (await c.get("/sentinel/explain/not-a-uuid")).status_code
            out["openapi"] = (await c.get("/openapi.json")).json()["paths"]
        return out

    out = asyncio.run(scenario())
    check = out["check"]
    assert (check["decision"], check["policyId"], check["policyVersion"]) == ("deny", "deny-big", 1)
    status, explained = out["explain"]
    assert status == 200, explained
    assert explained["policyCheckId"] == check["policyCheckId"]
    assert (explained["decision"], explained["mode"], explained["requestId"]) == (
        "deny", "sync", "e2e-1",
    )  # fmt: skip
    assert explained["rationale"] == f"{identity.CALLER} moved 2500, over 1000"  # not agent:9
    assert explained["evidence"]["valuesRead"]["context.amount"] == 2500
    (path,) = explained["evaluations"]
    assert (path["policyId"], path["result"], path["role"]) == ("deny-big", "matched", "enforced")
    assert explained["record"]["topic"] == db_kernel.names.policy_checks

    stream_check = out["stream"]
    assert (stream_check["decision"], stream_check["mode"]) == ("allow", "stream")
    assert stream_check["evidence"]["event"] == {
        "topic": position.topic,
        "partition": position.partition,
        "offset": position.offset,
        "eventId": action.event_id,
    }

    [listed] = out["policies"]["policies"]
    assert listed["versions"] == {"1": {"state": "active", "canaryPercent": 10.0}}
    assert [h["actor"] for h in out["policy"]["history"]] == ["alice", "bob", "bob", "carol"]
    assert out["missing_policy"] == 404
    assert out["unknown"][0] == 404 and "wait_ms" in out["unknown"][1]["reason"]
    assert out["bad_id"] == 422
    assert {"/sentinel/check", "/sentinel/explain/{policy_check_id}", "/policies"} <= set(
        out["openapi"]
    )


def test_explain_names_the_canary_its_sample_and_what_the_active_set_decided(
    db_kernel: Kernel, db_cli: KernelCLI, tmp_path: Path
) -> None:
    """Issue 12 item 5: a decision made by a canary is explained as one."""
    migrate(db_kernel.settings.database_url)
    pid = f"cap-{uuid.uuid4().hex[:6]}"
    v1 = {**POLICY, "id": pid, "severity": "MEDIUM", "rule": "context.amount > 1000"}
    v2 = {**v1, "rule": "context.amount > 100"}
    for verb, spec in (("create", v1), ("version", v2)):
        f = tmp_path / f"{verb}.json"
        f.write_text(json.dumps(spec))
        done = db_cli("policy", verb, str(f), "--actor", "alice")
        assert done.returncode == 0, done.stderr
    steps = [
        (pid, "1", "test"), (pid, "1", "canary", "--percent", "100"), (pid, "1", "active"),
        (pid, "2", "test"), (pid, "2", "canary", "--percent", "100"),
    ]  # fmt: skip
    for step in steps:
        done = db_cli("policy", "transition", *step, "--actor", "bob")
        assert done.returncode == 0, done.stderr

    async def scenario() -> dict[str, Any]:
        async with serve(build_app(db_kernel)) as c:
            body = {"action": "payments.send", "context": {"amount": 500}, "requestId": "canary-1"}
            check = (await c.post("/sentinel/check", json=body)).json()
            projector = threading.Thread(target=project, args=(db_kernel,))
            projector.start()
            explained = await c.get(
                f"/sentinel/explain/{check['policyCheckId']}", params={"wait_ms": 20000}
            )
            await asyncio.to_thread(projector.join)
            return {"check": check, "explain": explained.json()}

    out = asyncio.run(scenario())
    assert (out["check"]["decision"], out["check"]["policyVersion"]) == ("deny", 2)
    [view] = out["explain"]["rollout"]
    assert view["policyId"] == pid
    assert (view["canaryVersion"], view["activeVersion"], view["percent"]) == (2, 1, 100.0)
    assert view["sampled"] is True and 0 <= view["sampleValue"] < 1
    assert (view["candidateDecision"], view["activeDecision"]) == ("deny", "allow")
