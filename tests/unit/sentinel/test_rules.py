"""Rules: create-time validation, evaluation outcomes, and the paths a rule reads."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.events import new_event
from streams.sentinel.errors import PolicyValidationError, RuleError
from streams.sentinel.rationale import compile_template
from streams.sentinel.rules import Activation, compile_rule, format_path, read_paths

ACTION: dict[str, Any] = {
    "action": "payments.transfer",
    "actor": "agent:7",
    "subject": "acct:1",
    "resource": "prod/ledger",
    "context": {"amount": 25000, "tags": ["a"], "odd key": 1},
    "eventType": "kernelAction",
    "ts": 1,
}


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ('colour == "red"', "reads 'colour', which a kernel action does not have"),
        ("action > 3", "no matching overload"),
        ("action ==", "Syntax error"),
        ("1 + 2", "must be a boolean expression"),
        ("action.size", "cannot be the operand of a select"),
    ],
)
def test_bad_rules_are_rejected_with_the_field(source: str, reason: str) -> None:
    with pytest.raises(RuleError) as err:
        compile_rule(source)
    assert err.value.field == "rule"
    assert reason in err.value.reason


def test_evaluation_outcomes() -> None:
    act = Activation(ACTION)
    assert (
        compile_rule('context.amount > 10000 && resource.startsWith("prod/")').evaluate(act).matched
    )
    assert not compile_rule("context.amount < 10").evaluate(act).matched
    missing = compile_rule("context.limit > 1").evaluate(act)
    assert not missing.matched
    assert missing.error is not None
    assert "limit" in missing.error
    type_error = compile_rule("context.tags > 1").evaluate(act)
    assert type_error.error is not None
    not_bool = compile_rule("context.amount").evaluate(act)
    assert not_bool.error is not None
    assert "not a boolean" in not_bool.error


def test_read_paths_follow_fields_and_stop_at_methods() -> None:
    src = (
        'context.amount > 1 && actor.startsWith("context.fake") && '
        'context["odd key"] == 1 && context.tags.exists(t, t == "a") && has(context.maybe)'
    )
    assert read_paths(src) == (
        ("context", "amount"),
        ("actor",),
        ("context", "odd key"),
        ("context", "tags"),
        ("context", "maybe"),
    )
    assert format_path(("context", "odd key")) == 'context["odd key"]'
    rule = compile_rule(src)
    present, missing = rule.values_read(Activation(ACTION))
    assert present == {
        "context.amount": 25000,
        "actor": "agent:7",
        'context["odd key"]': 1,
        "context.tags": ["a"],
    }
    assert missing == ["context.maybe"]


def test_activation_of_a_kernel_action_event() -> None:
    event = new_event(
        "kernelAction",
        "agent:7",
        "acct:1",
        {"action": "payments.transfer", "resource": None, "context": {"amount": 3}},
    )
    act = Activation.of_event(event)
    assert act.values["action"] == "payments.transfer"
    assert act.values["eventType"] == "kernelAction"
    assert act.values["ts"] == event.ts_ms
    assert compile_rule("resource == null && context.amount == 3").evaluate(act).matched


def test_rationale_template() -> None:
    t = compile_template("{policy.id} v{policy.version}: {actor} moved {context.amount} {{ok}}")
    assert t.paths == (("actor",), ("context", "amount"))
    text = t.render({"policy.id": "p", "policy.version": 2}, {"actor": "a", "context.amount": 5})
    assert text == "p v2: a moved 5 {ok}"
    assert "<absent>" in t.render({"policy.id": "p", "policy.version": 2}, {})
    for bad in ("{colour}", "{", "{policy.owner}"):
        with pytest.raises(PolicyValidationError) as err:
            compile_template(bad)
        assert err.value.field == "rationale"
