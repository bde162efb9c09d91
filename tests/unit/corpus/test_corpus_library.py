"""The corpus library itself: its records are what they claim, and its judge is right.

A corpus failure must come from Kernel, not from the harness: these tests pin
the hand-made records (they decode, field for field, to what the class says
they hold) and the verdicts of :func:`tests.corpus.harness._judge` on
synthetic end states.
"""

from __future__ import annotations

from collections import Counter

import orjson
from hypothesis import assume, given
from hypothesis import strategies as st

from schemas.catalog import catalog
from schemas.codec import EventCodec
from schemas.errors import ValidationError
from schemas.events import Event
from tests.corpus.cases import INPUT_TOPICS, Expect, Http, Publish, Raw, named_cases, sized_action
from tests.corpus.harness import _final, _Item, _judge
from tests.corpus.observe import DeadLetter, Snapshot
from tests.corpus.raw import (
    action_datum,
    audit_record_datum,
    chain_of,
    decode_wire,
    encode_raw,
    encode_valid,
)
from tests.strategies import events

CODEC = EventCodec()
_wire = decode_wire


def test_every_class_of_the_issue_is_named() -> None:
    classes = {c.cls for c in named_cases(1_048_576)}
    for expected in (
        "check-context-deep-250",
        "publish-context-deep-253",
        "sdk-event-400kb",
        "sdk-event-just-under-max",
        "raw-compressible-junk",
        "raw-nul-subject",
        "raw-nul-requestId",
        "raw-nul-action",
        "raw-eventid-not-uuid",
        "http-body-not-utf8",
        "http-nul-param",
        "http-cursor-out-of-range",
        "http-json-deep-990",
        "publish-not-utf8",
        "publish-deep-1000",
        "publish-raw-U+2028",
        "publish-raw-U+0085",
        "publish-event-1MB",
        "raw-trailing-bytes",
        "raw-duplicate-json-keys",
        "raw-eventtype-mismatch",
        "sdk-same-eventid-twice",
        "raw-same-eventid-twice",
        "sdk-year-9999",
    ):
        assert expected in classes


def test_raw_records_reach_every_input_topic() -> None:
    topics = {c.injection.topic for c in named_cases(1_048_576) if isinstance(c.injection, Raw)}
    assert topics == set(INPUT_TOPICS)


def test_hand_made_records_hold_what_their_class_says() -> None:
    cases = named_cases(1_048_576)
    by_cls: dict[str, list[bytes]] = {}
    for c in cases:
        if isinstance(c.injection, Raw):
            by_cls.setdefault(c.cls, []).extend(v for v in c.injection.values if v is not None)
    # trailing bytes: the record decodes, and bytes remain after its body
    for data in by_cls["raw-trailing-bytes"]:
        assert data.endswith(b"\x00tail")
        assert CODEC.decode(data[: -len(b"\x00tail")]) is not None
    # duplicate keys survive on the wire (the text is not re-serialised)
    wires = [_wire(d) for d in by_cls["raw-duplicate-json-keys"]]
    texts = [v for w in wires for v in w["body"].values() if isinstance(v, str)]  # type: ignore[attr-defined]
    assert sum(t.count('"amount"') == 2 or t.count('"eventId"') == 2 for t in texts) >= 2
    # NUL where the class says
    assert "\x00" in _wire(by_cls["raw-nul-subject"][0])["subject"]  # type: ignore[operator]
    assert "\x00" in _wire(by_cls["raw-nul-action"][0])["body"]["action"]  # type: ignore[index]
    # eventType disagrees with the writer schema
    for data in by_cls["raw-eventtype-mismatch"]:
        assert _wire(data)["eventType"] != catalog().by_fingerprint(data[2:10]).event_type
    assert _wire(by_cls["raw-eventid-not-uuid"][0])["eventId"] == "not-a-uuid"
    assert all(len(v) >= 1_500_000 for v in by_cls["raw-compressible-junk"])
    assert _wire(by_cls["raw-year-9999"][0])["ts"] == 253_402_300_799_000


def test_boundary_sizes_are_at_the_boundary() -> None:
    e = sized_action(100_000)
    size = max(len(orjson.dumps(e.to_json())), len(encode_valid(e)))
    assert 100_000 - 16 <= size <= 100_000
    publish = next(c for c in named_cases(1_048_576) if c.cls == "publish-event-1MB")
    assert isinstance(publish.injection, Publish)
    assert 1_000_000 < len(publish.injection.data) < 1_048_576


def test_http_cases_are_well_formed_requests() -> None:
    for c in named_cases(1_048_576):
        if isinstance(c.injection, Http):
            assert c.injection.path.startswith("/")
            assert c.expect in (Expect.BAD, Expect.EITHER)


@given(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20))
def test_raw_encoding_is_the_codec_encoding_of_a_valid_datum(action: str) -> None:
    datum = action_datum(action=action or "x", context='{"a":1}')
    event = CODEC.decode(encode_raw("kernelAction", datum))
    assert event.body["action"] == (action or "x")
    assert encode_valid(event) == encode_raw("kernelAction", datum)


@given(events())
def test_encode_valid_is_the_codecs_encoding(event: Event) -> None:
    try:
        expected = CODEC.encode(event)
    except ValidationError:
        assume(False)  # an event the codec refuses has no codec encoding to compare with
    assert encode_valid(event) == expected


def test_chain_of_finds_a_forged_link_and_ignores_junk() -> None:
    datum = audit_record_datum()
    assert chain_of(encode_raw("auditRecord", datum)) == datum["body"]["chain"]  # type: ignore[index]
    assert chain_of(b"junk") is None
    assert chain_of(None) is None


def _snap(**kw: object) -> Snapshot:
    base: dict[str, object] = {
        "audit_by_source": Counter(),
        "audit_by_id": Counter(),
        "checks_by_action": Counter(),
        "checks_by_subject_event": Counter(),
        "checks_by_id": {},
        "chains": Counter(),
    }
    base.update(kw)
    return Snapshot(**base)  # type: ignore[arg-type]


class _DLQ:
    def __init__(self, by_source: dict[tuple[str, int, int], list[DeadLetter]]) -> None:
        self.by_source = by_source


P = ("t.actions", 0, 5)
Q = ("t.actions", 0, 6)
LETTER = DeadLetter("sentinel", "undecodable: trailing bytes", "SchemaError")


def test_judge_bad_records() -> None:
    bad = _Item("c", Expect.BAD, "raw", positions=(P,), is_action=True)
    assert _judge(bad, _snap(), _DLQ({})) is None  # pending
    assert _judge(bad, _snap(), _DLQ({P: [LETTER]})) == ("dead_lettered", "")  # type: ignore[arg-type]
    chained = _snap(audit_by_source=Counter({P: 1}))
    assert _judge(bad, chained, _DLQ({}))[0] == "unhandled"  # type: ignore[arg-type,index]
    assert _judge(bad, chained, _DLQ({P: [LETTER]}))[0] == "unhandled"  # type: ignore[arg-type,index]
    empty = DeadLetter("sentinel", "  ", "X")
    assert _judge(bad, _snap(), _DLQ({P: [empty]}))[0] == "unhandled"  # type: ignore[arg-type,index]
    assert _final(bad)[0] == "unhandled"


def test_judge_valid_and_either_records() -> None:
    ok = _snap(audit_by_source=Counter({P: 1}), checks_by_action=Counter({P: 1}))
    valid = _Item("c", Expect.VALID, "accepted", positions=(P,), is_action=True)
    assert _judge(valid, ok, _DLQ({})) == ("processed", "")  # type: ignore[arg-type]
    half = _snap(audit_by_source=Counter({P: 1}))
    assert _judge(valid, half, _DLQ({})) is None  # chained, not yet decided
    twice = _snap(audit_by_source=Counter({P: 2}), checks_by_action=Counter({P: 1}))
    assert _judge(valid, twice, _DLQ({}))[0] == "duplicated"  # type: ignore[arg-type,index]
    assert _judge(valid, _snap(), _DLQ({P: [LETTER]}))[0] == "unhandled"  # type: ignore[arg-type,index]
    assert _final(valid)[0] == "lost"
    either = _Item("c", Expect.EITHER, "raw", positions=(P,), is_action=True)
    assert _judge(either, _snap(), _DLQ({P: [LETTER]})) == ("dead_lettered", "")  # type: ignore[arg-type]
    assert _judge(either, ok, _DLQ({})) == ("processed", "")  # type: ignore[arg-type]
    refused = _Item("c", Expect.VALID, "refused", note="no")
    assert _judge(refused, _snap(), _DLQ({}))[0] == "unhandled"  # type: ignore[arg-type,index]


def test_judge_duplicates() -> None:
    dup = _Item("c", Expect.DUPLICATE, "dup", positions=(P, Q), is_action=True)
    once = _snap(audit_by_source=Counter({P: 1}), checks_by_action=Counter({P: 1}))
    assert _judge(dup, once, _DLQ({})) is None  # the second copy is not accounted for yet
    assert _judge(dup, once, _DLQ({Q: [LETTER]})) == ("dup-ok", "")  # type: ignore[arg-type]
    both = _snap(audit_by_source=Counter({P: 1, Q: 1}), checks_by_action=Counter({P: 1}))
    assert _judge(dup, both, _DLQ({}))[0] == "duplicated"  # type: ignore[arg-type,index]


def test_judge_sync_checks() -> None:
    check = _Item("c", Expect.EITHER, "check", check_id="c1")
    assert _judge(check, _snap(), _DLQ({})) is None  # type: ignore[arg-type]
    projected = _snap(checks_by_id={"c1": ("e1", 1)})
    assert _judge(check, projected, _DLQ({})) is None  # type: ignore[arg-type]
    done = _snap(checks_by_id={"c1": ("e1", 1)}, audit_by_id=Counter({"e1": 1}))
    assert _judge(check, done, _DLQ({})) == ("processed", "")  # type: ignore[arg-type]
