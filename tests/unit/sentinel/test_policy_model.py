"""The policy model: JSON round trip and validation errors that name the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schemas.errors import ValidationError
from streams.sentinel.policy import Effect, Policy, Severity, State, loads_policy


def policy_json(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "payments-large",
        "version": 1,
        "name": "Large transfers",
        "severity": "HIGH",
        "scope": {"eventTypes": ["kernelAction"], "actions": ["payments.*"]},
        "rule": "context.amount > 10000",
        "effect": "escalate",
        "rationale": "transfer of {context.amount} needs review",
    }
    data.update(overrides)
    return data


def test_defaults_and_round_trip() -> None:
    p = Policy.from_json(policy_json())
    assert p.fallback is Effect.DENY
    assert p.state is State.DRAFT
    assert p.severity is Severity.HIGH
    assert p.scope.actions == ("payments.*",)
    assert p.scope.subjects == ()
    again = loads_policy(json.dumps(p.to_json()))
    assert again == p


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"id": "Bad Id"}, "id", "a-z"),
        ({"version": 0}, "version", "positive"),
        ({"version": True}, "version", "positive"),
        ({"severity": "SEVERE"}, "severity", "LOW, MEDIUM, HIGH, CRITICAL"),
        ({"effect": "block"}, "effect", "allow, deny"),
        ({"fallback": "maybe"}, "fallback", "allow, deny"),
        ({"fallback": "allow"}, "fallback", "fails closed"),
        ({"state": "live"}, "state", "draft"),
        ({"rule": ""}, "rule", "non-empty"),
        ({"rule": "x" * 5000}, "rule", "longer"),
        ({"canaryPercent": 101}, "canaryPercent", "0 to 100"),
        ({"scope": {"eventTypes": []}}, "scope.eventTypes", "at least one"),
        ({"scope": {"eventTypes": ["nope"]}}, "scope.eventTypes[0]", "unknown event type"),
        ({"scope": {"eventTypes": ["kernelAction"], "actors": [3]}}, "scope.actors[0]", "string"),
        ({"scope": {"eventTypes": ["kernelAction"], "owner": []}}, "scope.owner", "unknown"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"rationale": None}, "rationale", "non-empty"),
    ],
)
def test_validation_names_the_field(overrides: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(ValidationError) as err:
        Policy.from_json(policy_json(**overrides))
    assert err.value.field == field
    assert reason in err.value.reason


def test_missing_required_fields() -> None:
    data = policy_json()
    del data["scope"]
    with pytest.raises(ValidationError) as err:
        Policy.from_json(data)
    assert err.value.field == "scope"


def test_rejects_non_ijson() -> None:
    with pytest.raises(ValidationError, match="duplicate"):
        loads_policy('{"id": "a", "id": "b"}')
    with pytest.raises(ValidationError) as err:
        Policy.from_json(policy_json(version=1, canaryPercent=2**60))
    assert err.value.field == "canaryPercent"
