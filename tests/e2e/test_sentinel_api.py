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
