"""The approvals fold never stops on a record: any schema-valid approval event is
applied or refused with a reason (the sentinel and the API's feed fold it)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import Event
from streams.approvals.log import ApprovalsLog, activation_request, genesis_event, request_event
from streams.approvals.registry import ApproverRegistry
from streams.chain.signing import LocalEd25519Signer
from tests.strategies import events, json_values

SIGNER = LocalEd25519Signer(b"\x01" * 32, "ap0")
REQUEST = activation_request("p1", 1, "alice")


@st.composite
def hostile(draw: st.DrawFn) -> Event:
    """A valid envelope and body, with the fields the fold reads set to anything."""
    event = draw(events("approval"))
    body: dict[str, Any] = dict(event.body)
    body["kind"] = draw(st.sampled_from(["genesis", "request", "approval", "quorum", "x"]))
    if draw(st.booleans()):
        body["requestId"] = REQUEST.request_id
    body["detail"] = draw(
        json_values
        | st.fixed_dictionaries(
            {"threshold": json_values, "registryVersion": json_values, "approvals": json_values}
        )
        | st.fixed_dictionaries({"approvers": st.lists(json_values, max_size=3)})
    )
    return replace(event, body=body)


@settings(max_examples=30, deadline=None)
@given(st.lists(hostile(), max_size=6))
def test_any_approval_event_is_applied_or_refused(evs: list[Event]) -> None:
    log = ApprovalsLog()
    registry = ApproverRegistry(1, 1, {SIGNER.signer_id: SIGNER.public_key})
    assert log.apply(genesis_event(registry, "ops"))
    assert log.apply(request_event(REQUEST))
    for event in evs:
        before = len(log.rejected)
        if not log.apply(event):
            assert len(log.rejected) == before + 1 and log.rejected[-1][1]
    assert log.registry is not None
