"""The named classes of issue 9's "What was observed", as injections with an expectation.

An :class:`Injection` says where a piece of input goes in -- :class:`Raw`
(straight to a topic with a raw Kafka producer), :class:`Sdk` (the producer
SDK), :class:`Publish` (a ``kernel publish`` file) or :class:`Http` (a
request to ``kernel api``) -- and :class:`Expect` what a correct Kernel does:

- ``BAD``: dead-lettered with a reason (raw) or refused at the door (4xx, a
  ``ValidationError``, a publish message naming the line), and never chained;
- ``VALID``: accepted and processed exactly once (chained, and decided if an
  action);
- ``EITHER``: refused / dead-lettered as a whole, or accepted and processed
  exactly once -- never accepted and then lost, dead-lettered or duplicated;
- ``DUPLICATE``: the same event twice: chained once, the other copy
  dead-lettered (or refused), decided once.

Sizes come from the settings under test (``max_event_bytes``), so the
boundary classes stay at the boundary when the limits change.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import orjson

from schemas.catalog import catalog
from schemas.events import Event, new_event
from tests.corpus.raw import (
    action_datum,
    audit_record_datum,
    checkpoint_datum,
    encode_raw,
    encode_valid,
    policy_change_datum,
    policy_check_datum,
)

__all__ = [
    "INPUT_TOPICS",
    "Case",
    "Expect",
    "Http",
    "Injection",
    "Publish",
    "Raw",
    "Sdk",
    "named_cases",
    "nest",
    "sized_action",
]

# Every topic a worker consumes (short names; see schemas/topics.py).
INPUT_TOPICS = ("actions", "policies", "policy-checks", "audit.chain", "audit.checkpoints")
YEAR_9999_MS = 253_402_300_799_000


class Expect(Enum):
    BAD = "bad"
    VALID = "valid"
    EITHER = "either"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Raw:
    """Records written straight to ``topic`` (short name), in order, to ``partition``."""

    topic: str
    values: tuple[bytes | None, ...]
    key: bytes | None = b"corpus"
    partition: int = 0


@dataclass(frozen=True)
class Sdk:
    """Events published one by one through ``Kernel.producer().publish``."""

    events: tuple[Event, ...]


@dataclass(frozen=True)
class Publish:
    """A ``kernel publish --skip-invalid`` input file, as bytes."""

    data: bytes


@dataclass(frozen=True)
class Http:
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})


Injection = Raw | Sdk | Publish | Http


@dataclass(frozen=True)
class Case:
    cls: str
    injection: Injection
    expect: Expect
    note: str = ""

    @property
    def tried(self) -> int:
        inj = self.injection
        if isinstance(inj, Raw):
            return len(inj.values)
        if isinstance(inj, Sdk):
            return len(inj.events)
        return 1


def nest(depth: int, leaf: Any = 1) -> Any:
    """``depth`` nested JSON arrays around ``leaf`` (built iteratively: no recursion limit)."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def _nested_json(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def _action(context: Any = None, **over: Any) -> Event:
    """A valid action, then ``over`` (Event field names) applied without validation."""
    body = {"action": "payments.send", "context": {} if context is None else context}
    event = new_event("kernelAction", "corpus", "corpus-subject", {"action": "payments.send"})
    return Event(**{**_fields(event), "body": {**event.body, **body}, **over})


def _fields(e: Event) -> dict[str, Any]:
    return {
        "event_id": e.event_id,
        "event_type": e.event_type,
        "ts_ms": e.ts_ms,
        "actor": e.actor,
        "subject": e.subject,
        "body": e.body,
        "schema_version": e.schema_version,
        "metadata": e.metadata,
    }


def sized_action(target: int) -> Event:
    """A valid action whose JSON mapping and Avro encoding are both at most ``target`` bytes
    (the bulk in ``context.amount``, which the active policy reads into its evidence),
    the larger of the two within a few bytes of it."""
    pad = max(0, target - 400)
    for _ in range(4):
        event = _action({"amount": "x" * pad})
        size = max(len(orjson.dumps(event.to_json())), len(encode_valid(event)))
        pad += target - size
    return event


def _line(event: Event) -> bytes:
    # The stdlib encoder: orjson stops at depth 254, and it keeps U+2028 raw.
    return json.dumps(event.to_json(), ensure_ascii=False, separators=(",", ":")).encode()


def _check(body: dict[str, Any] | bytes) -> Http:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return Http("POST", "/sentinel/check", raw)


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def _raw_everywhere(cls: str, values: Callable[[str], tuple[bytes | None, ...]]) -> list[Case]:
    return [Case(cls, Raw(t, values(t), partition=0), Expect.BAD) for t in INPUT_TOPICS]


_DATUMS: dict[str, tuple[str, Callable[..., dict[str, Any]]]] = {
    "actions": ("kernelAction", action_datum),
    "policies": ("policyChange", policy_change_datum),
    "policy-checks": ("policyCheck", policy_check_datum),
    "audit.chain": ("auditRecord", audit_record_datum),
    "audit.checkpoints": ("chainCheckpoint", checkpoint_datum),
}


def _valid_datum(topic: str, **over: Any) -> tuple[str, dict[str, Any]]:
    """The event type of ``topic`` and a well-formed wire datum of it."""
    event_type, build = _DATUMS[topic]
    return event_type, build(**over)


def named_cases(max_event_bytes: int) -> list[Case]:
    """Every class of the issue, a few records each."""
    cases: list[Case] = []
    add = cases.append
    dup = '{"amount":1,"amount":5000}'

    # -- nesting (under "amount": the active policy reads context.amount, so the value
    # lands in the decision record's evidence and in its chain link too) ----------
    add(
        Case(
            "check-context-deep-250",
            _check({"action": "payments.send", "context": {"amount": nest(250)}}),
            Expect.EITHER,
        )
    )
    add(
        Case(
            "publish-context-deep-253",
            Publish(_line(_action({"amount": nest(253)}))),
            Expect.EITHER,
        )
    )
    add(Case("sdk-context-deep-250", Sdk((_action({"amount": nest(250)}),)), Expect.EITHER))
    deep = action_datum(context='{"amount":' + _nested_json(253) + "}")
    add(
        Case(
            "raw-context-deep-253",
            Raw("actions", (encode_raw("kernelAction", deep),)),
            Expect.EITHER,
        )
    )
    add(
        Case(
            "http-json-deep-990",
            _check(b'{"action":"a","context":{"n":' + _nested_json(990).encode() + b"}}"),
            Expect.BAD,
        )
    )
    add(Case("http-json-deep-990", _check(_nested_json(20_000).encode()), Expect.BAD))
    add(
        Case(
            "publish-deep-1000",
            Publish(
                b'{"eventType":"kernelAction","actor":"a","subject":"s",'
                b'"body":{"action":"a","context":{"n":' + _nested_json(1000).encode() + b"}}}"
            ),
            Expect.BAD,
        )
    )

    # -- size ----------------------------------------------------------------
    big = _action({"amount": "x" * 400_000})
    add(Case("sdk-event-400kb", Sdk((big,)), Expect.EITHER))
    add(
        Case(
            "raw-event-400kb",
            Raw("actions", (encode_valid(_action({"amount": "y" * 400_000})),)),
            Expect.EITHER,
        )
    )
    add(
        Case(
            "sdk-event-just-under-max",
            Sdk((sized_action(max_event_bytes - 64),)),
            Expect.EITHER,
            note=f"max_event_bytes={max_event_bytes}",
        )
    )
    add(
        Case(
            "publish-event-1MB",
            Publish(_line(sized_action(1_024_000))),
            Expect.EITHER,
            note="between 1,000,000 bytes and 1 MiB",
        )
    )
    add(
        Case(
            "raw-event-1MB", Raw("actions", (encode_valid(sized_action(1_020_000)),)), Expect.EITHER
        )
    )
    fp = catalog().newest("kernelAction").fingerprint
    add(Case("raw-compressible-junk", Raw("actions", (b"A" * 1_500_000,)), Expect.BAD))
    cases += _raw_everywhere(
        "raw-compressible-junk", lambda _t: (b"\xc3\x01" + fp + b"\x00" * 1_500_000,)
    )

    # -- NUL -------------------------------------------------------------------
    for name in ("subject", "requestId", "action"):
        add(
            Case(
                f"raw-nul-{name}",
                Raw(
                    "actions",
                    (encode_raw("kernelAction", action_datum(**{name: "corpus\x00nul"})),),
                    key=b"nul\x00key",
                ),
                Expect.BAD,
            )
        )
    add(
        Case(
            "raw-nul-requestId",
            Raw(
                "policy-checks", (encode_raw("policyCheck", policy_check_datum(requestId="r\x00")),)
            ),
            Expect.BAD,
        )
    )
    add(
        Case(
            "check-nul",
            _check({"action": "a\u0000b", "requestId": "r\u0000", "subject": "s\u0000"}),
            Expect.EITHER,
        )
    )
    add(Case("sdk-nul-subject", Sdk((_action(subject="corpus\x00nul"),)), Expect.EITHER))

    # -- ids ---------------------------------------------------------------------
    add(
        Case(
            "raw-eventid-not-uuid",
            Raw("actions", (encode_raw("kernelAction", action_datum(eventId="not-a-uuid")),)),
            Expect.BAD,
        )
    )
    bad_payload = new_event("kernelAction", "c", "s", {"action": "x"}).to_json()
    bad_payload["eventId"] = "not-a-uuid"
    add(
        Case(
            "raw-eventid-not-uuid",
            Raw(
                "audit.chain",
                (
                    encode_raw("auditRecord", audit_record_datum(eventId="not-a-uuid")),
                    encode_raw(
                        "auditRecord",
                        audit_record_datum(payload=orjson.dumps(bad_payload).decode()),
                    ),
                ),
            ),
            Expect.BAD,
        )
    )

    # -- HTTP ------------------------------------------------------------------------
    add(Case("http-body-not-utf8", _check(b'{"action":"\xff\xfe"}'), Expect.BAD))
    add(Case("http-body-not-utf8", _check(b"\xc3\x28\xa0\xa1"), Expect.BAD))
    for path in (
        "/audit/events?actor=%00",
        "/audit/events?subject=a%00b",
        "/audit/events?eventType=%00",
        "/audit/events?chain=%00",
        "/audit/events?after=a%00/0@1&wait_ms=1",
        "/sentinel/explain/%00",
        "/policies/%00",
    ):
        add(Case("http-nul-param", Http("GET", path), Expect.BAD))
    for value in (
        [10**20, "c", 1],
        [2**63, "c", 0],
        [-(2**63) - 1, "c", 0],
        [0, "c", 2**64],
        [0, "\u0000", 0],
    ):
        add(
            Case(
                "http-cursor-out-of-range",
                Http("GET", f"/audit/events?cursor={_cursor(value)}"),
                Expect.BAD,
            )
        )

    # -- publish files -------------------------------------------------------------------
    add(Case("publish-not-utf8", Publish(_line(_action()) + b"\n" + b'{"x":"\xff"}\n'), Expect.BAD))
    for char in ("\u2028", "\u0085"):
        e = _action({"note": f"a{char}b"})
        line = _line(e)
        assert char.encode() in line  # a raw character inside a string, not an escape
        add(Case(f"publish-raw-U+{ord(char):04X}", Publish(line), Expect.VALID))

    # -- wire format ---------------------------------------------------------------------
    for topic in INPUT_TOPICS:
        et, datum = _valid_datum(topic)
        add(
            Case(
                "raw-trailing-bytes",
                Raw(topic, (encode_raw(et, datum, trailing=b"\x00tail"),)),
                Expect.BAD,
            )
        )
    add(
        Case(
            "raw-duplicate-json-keys",
            Raw("actions", (encode_raw("kernelAction", action_datum(context=dup)),)),
            Expect.BAD,
        )
    )
    add(
        Case(
            "raw-duplicate-json-keys",
            Raw("policy-checks", (encode_raw("policyCheck", policy_check_datum(evidence=dup)),)),
            Expect.BAD,
        )
    )
    add(
        Case(
            "raw-duplicate-json-keys",
            Raw(
                "policies",
                (
                    encode_raw(
                        "policyChange",
                        policy_change_datum(policy='{"policyId":"a","policyId":"b"}'),
                    ),
                ),
            ),
            Expect.BAD,
        )
    )
    add(
        Case(
            "raw-duplicate-json-keys",
            Raw(
                "audit.chain",
                (
                    encode_raw(
                        "auditRecord", audit_record_datum(payload='{"eventId":"x","eventId":"y"}')
                    ),
                ),
            ),
            Expect.BAD,
        )
    )
    for topic, wrong in (
        ("actions", "policyCheck"),
        ("policy-checks", "kernelAction"),
        ("policies", "approval"),
        ("audit.chain", "kernelAction"),
    ):
        et, datum = _valid_datum(topic, eventType=wrong)
        add(Case("raw-eventtype-mismatch", Raw(topic, (encode_raw(et, datum),)), Expect.BAD))
    cases += _raw_everywhere("raw-null-or-empty-value", lambda _t: (None, b""))

    # -- numbers: a float with an integral value past 2^53 is I-JSON, but Postgres jsonb
    # renders it as an integer, which RFC 8785 has no form for (found by hypothesis) ----
    far = -2.202225678814427e16
    add(Case("sdk-float-past-2^53", Sdk((_action({"x": far}),)), Expect.EITHER))
    add(
        Case(
            "raw-float-past-2^53",
            Raw("actions", (encode_raw("kernelAction", action_datum(context=f'{{"x":{far!r}}}')),)),
            Expect.EITHER,
        )
    )

    # -- duplicates and time ------------------------------------------------------------
    twice = _action({"n": 1})
    add(Case("sdk-same-eventid-twice", Sdk((twice, twice)), Expect.DUPLICATE))
    again = encode_valid(_action({"n": 2}))
    add(
        Case(
            "raw-same-eventid-twice", Raw("actions", (again, again), partition=1), Expect.DUPLICATE
        )
    )
    add(Case("sdk-year-9999", Sdk((_action(ts_ms=YEAR_9999_MS),)), Expect.EITHER))
    add(Case("publish-year-9999", Publish(_line(_action(ts_ms=YEAR_9999_MS))), Expect.EITHER))
    add(
        Case(
            "raw-year-9999",
            Raw(
                "actions", (encode_raw("kernelAction", action_datum(ts=YEAR_9999_MS)),), partition=2
            ),
            Expect.BAD,
        )
    )
    return cases


def valid_actions(n: int, tag: str) -> list[Event]:
    """Well-formed actions interleaved around each class (the canaries)."""
    return [
        new_event(
            "kernelAction",
            "corpus-valid",
            f"acct-{tag}-{i}",
            {"action": "payments.send", "context": {"amount": 10 + 2000 * (i % 2)}},
        )
        for i in range(n)
    ]


def check_body(i: int) -> bytes:
    return orjson.dumps(
        {
            "action": "payments.send",
            "actor": "corpus",
            "context": {"amount": 10 + 2000 * (i % 2)},
            "requestId": str(uuid.uuid4()),
        }
    )
