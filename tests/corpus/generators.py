"""hypothesis-generated corpus records: junk bytes, mutated Avro, hostile events and requests.

The examples are drawn by hypothesis (its generation phase: edge cases,
boundary sizes, odd Unicode) into a list; the harness then judges each one
against the real workers. There is no shrinking -- one deployment judges many
examples at once -- so a failing example is reported as it was drawn.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from schemas.events import Event, new_event
from tests.corpus.cases import INPUT_TOPICS, Case, Expect, Http, Publish, Raw, Sdk, nest
from tests.corpus.raw import encode_valid
from tests.integration.sentinel.test_stream_runner import DENY_BIG, activate

__all__ = ["collect", "generated_cases"]

T = TypeVar("T")

# Hostile text: every code point UTF-8 can carry, NUL and controls included.
hostile_text = st.text(st.characters(codec="utf-8"), max_size=30)
numbers = (
    st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([2**53, 2**53 + 1, -(2**63), 2**64, 1e308, 5e-324])
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | hostile_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=15,
)
contexts = st.dictionaries(hostile_text, json_values, max_size=5) | st.builds(
    lambda d: {"deep": nest(d)}, st.integers(200, 1200)
)


def collect(strategy: st.SearchStrategy[T], n: int) -> list[T]:
    """``n`` examples as hypothesis generates them for a test."""
    out: list[T] = []

    @settings(
        max_examples=n,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def gather(x: T) -> None:
        out.append(x)

    gather()
    return out[:n]


def _hostile_action(actor: str, subject: str, action: str, context: Any, ts_ms: int) -> Event:
    base = new_event("kernelAction", "a", "s", {"action": "x"})
    return Event(
        event_id=base.event_id,
        event_type="kernelAction",
        ts_ms=ts_ms,
        actor=actor,
        subject=subject,
        body={"action": action, "resource": None, "requestId": None, "context": context},
        schema_version=base.schema_version,
    )


hostile_actions = st.builds(
    _hostile_action,
    hostile_text,
    hostile_text,
    hostile_text,
    contexts,
    st.integers(-(2**62), 2**62) | st.just(1_764_000_000_000),
)


def _valid_records() -> list[tuple[str, bytes]]:
    action = new_event(
        "kernelAction", "svc", "acct", {"action": "payments.send", "context": {"amount": 5000}}
    )
    return [("actions", encode_valid(action)), ("policies", encode_valid(activate(DENY_BIG)[0]))]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    topic, data = draw(st.sampled_from(_valid_records()))
    how = draw(st.sampled_from(["flip", "truncate", "append", "splice"]))
    i = draw(st.integers(0, len(data) - 1))
    if how == "flip":
        data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1 :]
    elif how == "truncate":
        data = data[:i]
    elif how == "append":
        data = data + draw(st.binary(min_size=1, max_size=16))
    else:
        data = data[:i] + draw(st.binary(max_size=16)) + data[i:]
    return topic, data


def _line(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # deeper than orjson goes, or an integer past 64 bits
        import json
        import sys

        sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))  # the stdlib encoder recurses
        return json.dumps(value, ensure_ascii=False).encode()


def generated_cases(examples: int) -> list[Case]:
    cases: list[Case] = []
    for topic in INPUT_TOPICS:
        junk = collect(st.binary(max_size=512), examples)
        cases.append(Case("hyp-junk-bytes", Raw(topic, tuple(junk), partition=0), Expect.BAD))
    for topic, data in collect(mutated(), examples):
        cases.append(Case("hyp-mutated-avro", Raw(topic, (data,)), Expect.EITHER))
    events = collect(hostile_actions, examples)
    cases.append(Case("hyp-hostile-events-sdk", Sdk(tuple(events)), Expect.EITHER))
    raw = [encode_valid(e) for e in collect(hostile_actions, examples) if _encodes(e)]
    if raw:
        cases.append(Case("hyp-hostile-events-raw", Raw("actions", tuple(raw)), Expect.EITHER))
    for e in collect(hostile_actions, examples):
        line = _line({**_json(e), "ts": "2026-01-01T00:00:00.000Z"})
        cases.append(Case("hyp-hostile-lines-publish", Publish(line), Expect.EITHER))
    bodies = st.fixed_dictionaries(
        {"action": hostile_text, "context": contexts},
        optional={"actor": hostile_text, "requestId": hostile_text, "subject": hostile_text},
    )
    for body in collect(bodies, examples):
        cases.append(
            Case("hyp-hostile-checks", Http("POST", "/sentinel/check", _line(body)), Expect.EITHER)
        )
    return cases


def _json(e: Event) -> dict[str, Any]:
    return {"eventType": e.event_type, "actor": e.actor, "subject": e.subject, "body": e.body}


def _encodes(e: Event) -> bool:
    try:
        encode_valid(e)
    except Exception:
        return False
    return True
