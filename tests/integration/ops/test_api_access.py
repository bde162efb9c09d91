"""The API's door on the real stack: every route and role, refusals on the log, POST /events."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from ops.bootstrap import Kernel
from ops.http.access import OPEN, RULES
from ops.http.tokens import ROLES, TokenStore
from projections.migrate import migrate
from tests.integration.core.test_producer import read_all
from tests.integration.sentinel.api_helpers import serve


@pytest.fixture
def door(db_kernel: Kernel, tmp_path: Path) -> tuple[Kernel, dict[str, str]]:
    """A kernel with a token file of its own: one token per role, one revoked, one expired."""
    migrate(db_kernel.settings.database_url)
    tokens = tmp_path / "tokens.json"
    store = TokenStore(tokens)
    held = {role: store.create(f"as-{role}", [role])[0] for role in ROLES}
    held["revoked"] = store.create("gone", ["auditor"])[0]
    store.revoke("gone")
    held["expired"] = store.create("old", ["auditor"], ttl_s=0.001)[0]
    return Kernel(replace(db_kernel.settings, tokens_file_path=tokens)), held


def _bearer(token: str | None) -> dict[str, str]:
    return {} if token is None else {"authorization": f"Bearer {token}"}


async def _call(c: httpx.AsyncClient, method: str, path: str, token: str | None) -> int:
    headers = _bearer(token)
    if method == "POST":
        r = await c.post(
            path, content=b"{}", headers={**headers, "content-type": "application/json"}
        )
    else:
        r = await c.get(path, headers=headers)
    return r.status_code


def test_every_route_answers_every_role_and_no_identity_exactly(
    door: tuple[Kernel, dict[str, str]],
) -> None:
    kernel, held = door
    app = kernel.api()
    routes = [(m, p + str(uuid.uuid4()) if p.endswith("/") else p, r) for m, p, r in RULES]

    async def scenario() -> dict[tuple[str, str, str], int]:
        out: dict[tuple[str, str, str], int] = {}
        async with serve(app) as c:
            c.headers.pop("authorization", None)  # this test brings its own identities
            for method, path, _ in routes:
                for who in [*ROLES, "revoked", "expired", "none", "forged"]:
                    token = {"none": None, "forged": "kt_0badf00d_" + "x" * 43}.get(
                        who, held.get(who)
                    )
                    out[(method, path, who)] = await _call(c, method, path, token)
            out[("GET", "/admin", "security-admin")] = await _call(
                c, "GET", "/admin", held["security-admin"]
            )
        return out

    got = asyncio.run(scenario())
    for method, path, roles in routes:
        for who in ("revoked", "expired", "none", "forged"):
            want_open = roles == OPEN
            assert (got[(method, path, who)] != 401) == want_open, (method, path, who)
        for role in ROLES:
            status = got[(method, path, role)]
            if roles == OPEN or role in roles:
                assert status not in (401, 403), (method, path, role, status)
            else:
                assert status == 403, (method, path, role, status)
    assert got[("GET", "/admin", "security-admin")] == 403  # no rule: refused to everyone


def test_refusals_are_access_events_on_the_log_and_a_flood_is_summarised(
    door: tuple[Kernel, dict[str, str]],
) -> None:
    kernel, held = door
    app = kernel.api()

    async def scenario() -> None:
        async with serve(app) as c:
            c.headers.pop("authorization", None)
            assert (await c.get("/audit/chains")).status_code == 401
            r = await c.post(
                "/sentinel/check",
                json={"action": "x"},
                headers=_bearer(held["auditor"]),
            )
            assert r.status_code == 403 and "checker" in r.json()["reason"]
            for _ in range(300):  # one noisy source
                await c.get("/metrics", headers=_bearer(held["producer"]))
            await asyncio.sleep(1.2)  # the bucket refills one
            await c.get("/metrics", headers=_bearer(held["producer"]))
            await app.state.access_log.drain()

    asyncio.run(scenario())
    events = [e for _, e, _ in read_all(kernel, kernel.names.access)]
    assert all(e.event_type == "accessDenied" for e in events)
    anonymous = [e for e in events if e.actor == "anonymous"]
    assert anonymous and anonymous[0].body["status"] == 401
    assert anonymous[0].body["path"] == "/audit/chains"
    wrong_role = [e for e in events if e.body["principal"] == "token:as-auditor"]
    assert wrong_role[0].body["status"] == 403 and wrong_role[0].body["authMethod"] == "token"
    flood = [e for e in events if e.body["principal"] == "token:as-producer"]
    assert len(flood) <= 12  # the burst, and one after the refill, not 301
    assert sum(e.body["suppressed"] for e in flood) + len(flood) == 301  # none uncounted


def test_post_events_publishes_as_the_caller_idempotently_with_positions(
    door: tuple[Kernel, dict[str, str]],
) -> None:
    kernel, held = door
    app = kernel.api()
    event_id = str(uuid.uuid4())
    one = {
        "eventId": event_id,
        "eventType": "kernelAction",
        "actor": "agent:claimed",
        "subject": "acct:1",
        "body": {"action": "payments.send", "context": {"amount": 5}},
    }

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with serve(app) as c:
            c.headers.update(_bearer(held["producer"]))
            out["one"] = await c.post("/events", json=one)
            out["again"] = await c.post("/events", json=one)
            out["conflict"] = await c.post("/events", json={**one, "subject": "acct:2"})
            batch = [{**one, "eventId": str(uuid.uuid4()), "subject": f"s{i}"} for i in range(3)]
            out["batch"] = await c.post("/events", json={"events": batch})
            bad = [*batch[:1], {**one, "eventId": str(uuid.uuid4()), "body": {"context": {}}}]
            out["bad"] = await c.post("/events", json={"events": bad})
            out["policy"] = await c.post(
                "/events", json={**one, "eventId": str(uuid.uuid4()), "eventType": "policyChange"}
            )
            out["text"] = await c.post(
                "/events", content=b"{}", headers={"content-type": "text/plain"}
            )
            out["junk"] = await c.post(
                "/events", content=b"{nope", headers={"content-type": "application/json"}
            )
            out["checker"] = await c.post("/events", json=one, headers=_bearer(held["checker"]))
        return out

    out = asyncio.run(scenario())
    assert out["one"].status_code == 200, out["one"].text
    (pos,) = out["one"].json()["events"]
    assert pos["eventId"] == event_id and pos["topic"] == kernel.names.actions
    assert out["again"].json() == out["one"].json()  # a retry: the first positions
    assert out["conflict"].status_code == 409
    assert len(out["batch"].json()["events"]) == 3
    assert out["bad"].status_code == 422
    assert out["bad"].json()["field"].startswith("events[1].body")
    assert out["policy"].status_code == 422 and out["policy"].json()["field"] == "eventType"
    assert out["text"].status_code == 415
    assert out["junk"].status_code == 400
    assert out["checker"].status_code == 403
    on_log = [e for _, e, _ in read_all(kernel, kernel.names.actions)]
    assert [e.event_id for e in on_log].count(event_id) == 1  # idempotent
    assert len(on_log) == 4  # one, then the batch; nothing of the refused batch
    mine = next(e for e in on_log if e.event_id == event_id)
    assert mine.actor == "token:as-producer"  # who authenticated
    assert mine.metadata["claimedActor"] == "agent:claimed"  # what the body said, labelled


def test_the_openapi_document_declares_how_to_authenticate(
    door: tuple[Kernel, dict[str, str]],
) -> None:
    kernel, _ = door
    doc = kernel.api().openapi()
    assert set(doc["components"]["securitySchemes"]) == {"bearerAuth", "mutualTLS"}
    assert doc["paths"]["/health"]["get"]["security"] == []
    check = doc["paths"]["/sentinel/check"]["post"]
    assert check["x-kernel-roles"] == ["checker"]
    assert {"401", "403"} <= set(check["responses"])
    assert doc["paths"]["/events"]["post"]["x-kernel-roles"] == ["producer"]
    json.dumps(doc)  # serialisable as served
