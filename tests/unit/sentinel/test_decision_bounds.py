"""A decision record fits on the log whatever the action (``decision`` module, "Bounded").

The actions are those the input contract admits -- event JSON up to 256 KiB,
nesting up to 32, strings up to 64 KiB of UTF-8, arrays up to 10,000 items
(literal limits here: the contract's defaults) -- and the policies read those
values, quote them in their rationale and fail on them with errors that quote
them. Properties:

- every policyCheck the builder makes (enforced and simMode, stream and sync),
  for 1 and for 100 policies reading the values, Avro-encodes to at most
  1,000,000 bytes (``KERNEL_MAX_RECORD_BYTES``), and so does the chain link the
  signer makes of it (the policy-checks topic is audited);
- a value is quoted exactly when it is small (its RFC 8785 JSON at most
  ``VALUE_INLINE_BYTES``) and fits the record's budget; otherwise the record
  holds its reference -- byte count and SHA-256 of its RFC 8785 JSON, computed
  here with the ``rfc8785`` package -- and lists its path in
  ``evidence.truncated``;
- explain's expansion of the record (after an Avro round trip) is the
  evaluator's full path entry by entry, each value in its recorded form, each
  error as recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import EventCodec
from schemas.events import Event, new_event
from schemas.positions import LogPosition
from streams.chain.signer import ChainSigner
from streams.chain.signing import LocalEd25519Signer
from streams.processor import InputRecord
from streams.sentinel.check_request import CheckRequest
from streams.sentinel.check_service import CheckService
from streams.sentinel.decision import (
    ERROR_CHARS,
    RATIONALE_CHARS,
    VALUE_INLINE_BYTES,
    VALUES_INLINE_BUDGET,
    EvaluatedEvent,
    build_policy_checks,
    expand_path,
)
from streams.sentinel.evaluator import PolicySet, compile_policy, evaluate
from streams.sentinel.lifecycle import RegistryState, apply_change, plan_create, plan_transition
from streams.sentinel.policy import Effect, Policy, Scope, Severity, State
from streams.sentinel.registry import PolicyRegistry
from streams.sentinel.rules import Activation

MAX_RECORD_BYTES = 1_000_000
MAX_EVENT_JSON = 256 * 1024
MAX_STRING_BYTES = 64 * 1024
MAX_DEPTH = 32
CODEC = EventCodec()
SIGNER = ChainSigner(
    LocalEd25519Signer(hashlib.sha256(b"bounds").digest(), "bounds"), ["t.checks"], "t.chain", 3
)

RULES = [
    'context.a == "x"',
    "context.a.size() > 3 && context.b != null",
    "context.m[context.a] == 1",  # an error quoting the value of context.a
    "context.a > 1",  # an error that quotes nothing
    "context.a != null || context.b != null || context.c != null || context.d != null",
    "true",
]
RATIONALES = ["{context.a} / {context.b} / {context.c} / {context.d}", "{policy.id} {effect}"]
CHARS = ["x", "é", "€", "😀", '"', "\\", "\n", "\x01"]  # 1-4 UTF-8 bytes, 1-6 JSON bytes
VALUE_JSON = (MAX_EVENT_JSON - 8 * 1024) // 4  # four values and the envelope fit the event


def _json_len(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode())


@st.composite
def strings(draw: st.DrawFn, budget: int = VALUE_JSON) -> str:
    char = draw(st.sampled_from(CHARS))
    most = min(MAX_STRING_BYTES // len(char.encode()), (budget - 2) // (_json_len(char) - 2))
    return char * draw(st.integers(0, most) | st.just(most))


@st.composite
def nested(draw: st.DrawFn) -> Any:
    depth = draw(st.integers(1, MAX_DEPTH - 3))  # event > body > context > value
    value: Any = draw(strings(budget=VALUE_JSON - 4 * depth))
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


values = st.one_of(
    strings(),
    nested(),
    st.lists(st.integers(-(2**53) + 1, 2**53 - 1), max_size=10).map(lambda xs: xs * 1000),
    st.integers(-(2**53) + 1, 2**53 - 1),
    st.floats(-(2**53 - 1), 2**53 - 1, allow_nan=False),
    st.booleans(),
    st.none(),
)
context_st = st.fixed_dictionaries(
    {},
    optional={
        "a": values,
        "b": values,
        "c": values,
        "d": values,
        "m": st.just({"k": 1}),
    },
)
specs_st = st.lists(
    st.tuples(
        st.sampled_from(RULES),
        st.sampled_from([State.TEST, State.CANARY, State.ACTIVE]),
        st.sampled_from(RATIONALES),
        st.sampled_from(list(Effect)),
    ),
    min_size=1,
    max_size=4,
)


def policies(specs: list[tuple[Any, ...]], count: int) -> list[Policy]:
    return [
        Policy(
            policy_id=f"p{i:03d}",
            version=1,
            name=f"p{i}",
            severity=Severity.HIGH,
            scope=Scope(("kernelAction",)),
            rule=rule,
            effect=effect,
            rationale=rationale,
            state=state,
            canary_percent=50.0,
        )
        for i, (rule, state, rationale, effect) in enumerate(
            specs[i % len(specs)] for i in range(count)
        )
    ]


def action(context: dict[str, Any]) -> Event:
    event = new_event("kernelAction", "agent:7", "acct-1", {"action": "a.x", "context": context})
    assert len(json.dumps(event.to_json(), ensure_ascii=False).encode()) <= MAX_EVENT_JSON
    return event


def jcs_reference(value: Any) -> dict[str, Any]:
    data = rfc8785.dumps(value)
    return {"truncated": True, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def assert_fits(checks: Sequence[Event]) -> None:
    for offset, check in enumerate(checks):
        size = len(CODEC.encode(check))
        assert size <= MAX_RECORD_BYTES, size
        record = InputRecord("t.checks", 0, offset, check.ts_ms, b"k", check)
        _, (link,) = SIGNER.step(SIGNER.initial(), record)
        assert len(CODEC.encode(link.event)) <= MAX_RECORD_BYTES


def expected_entry(entry: dict[str, Any], truncated: set[str]) -> dict[str, Any]:
    """An evaluator entry in its recorded form, derived from the definitions."""
    out = dict(entry)
    if entry["valuesRead"] is not None:
        out["valuesRead"] = {
            p: jcs_reference(v) if p in truncated else v for p, v in entry["valuesRead"].items()
        }
    error = entry["error"]
    if error is not None and len(error) > ERROR_CHARS:
        digest = hashlib.sha256(error.encode()).hexdigest()
        out["error"] = f"{error[:ERROR_CHARS]}... [cut: {len(error)} characters, sha256 {digest}]"
    return out


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(context=context_st, specs=specs_st, count=st.sampled_from([1, 100]))
def test_any_admitted_action_gives_records_that_fit_and_expand_to_the_path(
    context: dict[str, Any], specs: list[tuple[Any, ...]], count: int
) -> None:
    chosen = policies(specs, count)
    event = action(context)
    activation = Activation.of_event(event)
    ev = evaluate(PolicySet(compile_policy(p) for p in chosen), activation, "sample")
    evaluated = EvaluatedEvent(event.event_id, event.subject, LogPosition("t.actions", 0, 7))
    checks = build_policy_checks(ev, evaluated, mode="stream", deterministic_ids=True)
    assert_fits(checks)
    by_key = {p.key: p for p in chosen}
    for check in checks:
        body = CODEC.decode(CODEC.encode(check)).body
        evidence = body["evidence"]
        truncated = set(evidence.get("truncated", []))
        assert set(evidence["valuesRead"]) == set(ev.values_read)
        inline = 0
        for path, value in ev.values_read.items():
            size = len(rfc8785.dumps(value))
            if path in truncated:
                assert evidence["valuesRead"][path] == jcs_reference(value)
            else:
                assert evidence["valuesRead"][path] == value
                assert size <= VALUE_INLINE_BYTES or isinstance(value, int | float | bool)
                if isinstance(value, str | list | dict):
                    inline += size
        assert inline <= VALUES_INLINE_BUDGET
        assert len(body["rationale"]) <= RATIONALE_CHARS + 120
        assert expand_path(body, by_key) == [
            expected_entry(r.to_json(), truncated) for r in ev.results
        ]


def test_one_large_value_read_by_100_policies_is_referenced_not_repeated() -> None:
    blob = "€" * (MAX_STRING_BYTES // 3)
    event = action({"a": blob, "b": "small"})
    chosen = policies([("context.m[context.a] == 1", State.TEST, RATIONALES[0], Effect.DENY)], 100)
    ev = evaluate(
        PolicySet(compile_policy(p) for p in chosen), Activation.of_event(event), "sample"
    )
    checks = build_policy_checks(ev, EvaluatedEvent(event.event_id, "acct-1"), mode="stream")
    assert_fits(checks)
    for check in checks:
        encoded = CODEC.encode(check)
        assert encoded.count("€€€€".encode()) <= 100 + 2  # cut errors and the rationale only
        evidence = check.body["evidence"]
        assert evidence["truncated"] == ["context.a"]
        assert evidence["valuesRead"] == {"context.a": jcs_reference(blob), "context.b": "small"}


class _Policies:
    ready = True

    def __init__(self, registry: PolicyRegistry) -> None:
        self.registry = registry


class _Log:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish(self, events: Sequence[Event]) -> list[LogPosition]:
        self.events.extend(events)
        return [LogPosition("t.checks", 0, i) for i in range(len(events))]


def _live(chosen: list[Policy]) -> PolicyRegistry:
    state = RegistryState()
    for p in chosen:
        state = apply_change(state, plan_create(state, p, "a"))
        change = plan_transition(state, p.policy_id, 1, State.TEST, "a")
        state = apply_change(state, change)
    return PolicyRegistry(state)


def test_the_sync_check_builds_its_record_with_the_same_bounded_builder() -> None:
    blob = {"k": ["😀" * (MAX_STRING_BYTES // 4)]}
    chosen = policies([(RULES[4], State.TEST, RATIONALES[0], Effect.DENY)], 100)
    log = _Log()
    service = CheckService(_Policies(_live(chosen)), log, budget_ms=60_000)
    request = CheckRequest("a.x", "agent:7", context={"a": blob, "b": "x" * 60_000})
    answer = asyncio.run(service.check(request))
    service.close()
    assert answer.status == 200
    assert_fits(log.events)
    assert answer.body["evidence"]["truncated"] == ["context.a", "context.b"]
    assert len(answer.body["rationale"]) <= RATIONALE_CHARS + 120
