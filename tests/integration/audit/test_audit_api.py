"""GET /audit/events and /audit/chains over a real pipeline."""

from __future__ import annotations

import asyncio
from typing import Any

from ops.bootstrap import Kernel
from ops.http.app import build_app
from tests.integration.core.test_producer import _actions
from tests.integration.sentinel.api_helpers import serve


def _pipeline(kernel: Kernel) -> None:
    for runner in (kernel.chain_signer(), kernel.audit_projector()):
        try:
            runner.run_until_idle(idle_s=1.0)
        finally:
            runner.close()


def _get(kernel: Kernel, *paths: str) -> list[Any]:
    async def go() -> list[Any]:
        async with serve(build_app(kernel)) as client:
            return [await client.get(p) for p in paths]

    return asyncio.run(go())


def test_filters_pagination_chains_and_read_your_writes(audit_kernel: Kernel) -> None:
    kernel = audit_kernel
    events = _actions(7, "acct-a") + _actions(5, "acct-b")
    positions = kernel.producer().publish_batch(events)
    last = positions[-1]
    # Not projected yet: waiting briefly for the position times out with a clear 504.
    (early,) = _get(kernel, f"/audit/events?after={last}&wait_ms=50")
    assert early.status_code == 504
    assert early.json()["after"] == str(last)
    _pipeline(kernel)

    subject_b, chains, bad_cursor, bad_after, waited = _get(
        kernel,
        "/audit/events?subject=acct-b&limit=100",
        "/audit/chains",
        "/audit/events?cursor=nonsense",
        "/audit/events?after=nonsense",
        f"/audit/events?after={last}&wait_ms=1000&limit=1",
    )
    assert subject_b.status_code == 200
    got = subject_b.json()["events"]
    assert [e["id"] for e in got] == [e.event_id for e in events[7:]]
    assert all(e["event"]["subject"] == "acct-b" for e in got)
    assert subject_b.json()["nextCursor"] is None
    heads = {c["chain"]: c for c in chains.json()["chains"]}
    assert sum(c["length"] for c in heads.values()) == 12
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["field"] == "cursor"
    assert bad_after.status_code == 422
    assert waited.status_code == 200

    # Walk every page of 5: each event exactly once, in (ts, chain, seq) order.
    seen: list[str] = []
    cursor = ""
    while True:
        (page,) = _get(kernel, f"/audit/events?eventType=kernelAction&limit=5{cursor}")
        body = page.json()
        seen += [e["id"] for e in body["events"]]
        if body["nextCursor"] is None:
            break
        cursor = f"&cursor={body['nextCursor']}"
    assert sorted(seen) == sorted(e.event_id for e in events)
    assert len(seen) == len(set(seen))
