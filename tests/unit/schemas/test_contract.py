"""The input contract: each limit, each wire-format class of issue 9, and a fuzzed decoder.

A record is built here the way a foreign producer could write it straight to
Kafka (``Event(...)`` skips the door's checks, ``EventCodec.encode`` checks
only the record size), then decoded as a worker would; the same event is
tried at the door (``Event.from_json``).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import replace
from typing import Any

import orjson
import pytest
from fastavro import schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ops.config import Settings
from schemas.catalog import catalog
from schemas.codec import SINGLE_OBJECT_MAGIC, EventCodec
from schemas.contract import (
    DERIVED_DEPTH,
    NEWEST_TS_MS,
    OLDEST_TS_MS,
    InputContract,
    LimitError,
)
from schemas.errors import ConfigError, KernelError, SchemaError, ValidationError
from schemas.events import Event, format_ts, new_event, now_ms
from schemas.ijson import MalformedJSONError, loads_ijson
from streams.dead_letter import dead_letter
from streams.jsonlines import parse_lines, split_lines
from tests.strategies import events, json_values

CODEC = EventCodec()
TS = 1_764_547_200_000  # 2025-12-01T00:00:00Z
ID = "6f1c2d3e-4b5a-4c6d-8e7f-8091a2b3c4d5"


def action(**body: Any) -> Event:
    return Event(
        event_id=ID,
        event_type="kernelAction",
        ts_ms=TS,
        actor="svc",
        subject="acct-1",
        body={"action": "pay", "resource": None, "requestId": None, "context": {}, **body},
    )


def wire(event: Event) -> bytes:
    """What a foreign producer can put on the log: encoded without the door's checks."""
    return CODEC.encode(event)


def door(event: Event) -> Event:
    """The same event through the door's JSON mapping (``ts`` relative to now)."""
    return Event.from_json(event.to_json())


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def refused(event: Event, field: str | None, *, log_ts_ms: int | None = None) -> str:
    """Both the decoder and the door refuse ``event``, naming ``field``; the reason."""
    with pytest.raises(ValidationError) as decoded:
        CODEC.decode(wire(event), log_ts_ms=log_ts_ms)
    assert decoded.value.field == field
    with pytest.raises(ValidationError) as at_door:
        door(event)
    assert at_door.value.field == field
    return decoded.value.reason


def test_a_valid_event_round_trips_and_passes_the_door() -> None:
    event = action(context={"amount": 120, "tags": ["a", "b"], "note": "ünïcode \u2028"})
    assert CODEC.decode(wire(event), log_ts_ms=TS) == event
    assert door(event).body == event.body


# -- limits ---------------------------------------------------------------
def test_depth_is_counted_from_the_event_object_and_names_the_path() -> None:
    # event 1, body 2, context 3: 29 more levels of arrays reach 32, one more is over.
    ok = action(context={"a": nested(29)})
    CODEC.decode(wire(ok))
    assert door(ok).body["context"] == {"a": nested(29)}
    reason = refused(action(context={"a": nested(30)}), "body.context.a" + "[0]" * 29)
    assert reason == "too deep: nested over 32 levels"


def test_the_issues_250_deep_context_is_refused_at_the_door_and_by_the_decoder() -> None:
    assert "too deep" in refused(action(context={"x": nested(250)}), "body.context.x" + "[0]" * 29)


def test_strings_over_max_string_bytes_count_utf8_bytes() -> None:
    contract = InputContract(max_string_bytes=100)
    codec = EventCodec(contract=contract)
    codec.decode(codec.encode(action(context={"s": "é" * 50})))  # 100 bytes
    with pytest.raises(LimitError, match="string of 102 bytes, over the limit of 100") as exc:
        codec.decode(codec.encode(action(context={"s": "é" * 51})))
    assert exc.value.field == "body.context.s"
    with pytest.raises(LimitError) as key:
        contract.check_value({"a": {"k" * 101: 1}}, "context")
    assert key.value.field == "context.a"  # the object holding the key


def test_arrays_and_objects_over_their_limits() -> None:
    codec = EventCodec(contract=InputContract(max_array_items=5, max_object_members=3))
    codec.decode(codec.encode(action(context={"a": [1] * 5})))
    with pytest.raises(LimitError, match="6 items, over the limit of 5") as items:
        codec.decode(codec.encode(action(context={"a": [1] * 6})))
    assert items.value.field == "body.context.a"
    with pytest.raises(LimitError, match="4 members") as members:
        codec.decode(codec.encode(action(context={"a": {str(i): i for i in range(4)}})))
    assert members.value.field == "body.context.a"


@pytest.mark.parametrize("field", ["actor", "subject"])
def test_envelope_names_over_max_name_bytes(field: str) -> None:
    event = replace(action(), **{field: "n" * 513})
    assert "over the limit of 512" in refused(event, field)


@pytest.mark.parametrize("field", ["action", "resource", "requestId"])
def test_body_names_over_max_name_bytes(field: str) -> None:
    assert "over the limit of 512" in refused(action(**{field: "é" * 257}), f"body.{field}")


def test_the_issues_400_kb_event_is_refused_by_size_as_json() -> None:
    # Strings of 40 KB each stay under max_string_bytes; together they are 400 KB.
    event = action(context={f"k{i}": "x" * 40_000 for i in range(10)})
    with pytest.raises(LimitError, match=r"bytes as JSON, over the limit of 262144") as dec:
        CODEC.decode(wire(event))
    assert "KERNEL_MAX_EVENT_BYTES" in str(dec.value)
    with pytest.raises(LimitError, match="over the limit of 262144"):
        door(event)


def test_a_record_between_kafkas_limit_and_1_mib_is_refused_when_encoding() -> None:
    event = action(context={f"k{i}": "x" * 60_000 for i in range(17)})  # ~1,020,000 bytes
    with pytest.raises(ValidationError, match="KERNEL_MAX_RECORD_BYTES"):
        CODEC.encode(event)


def test_derived_records_get_headroom_so_what_a_door_accepts_can_be_derived() -> None:
    # The largest accepted event, chained: the link embeds its JSON one level down.
    base = action(context={f"k{i}": "x" * 50_000 for i in range(5)})
    pad = InputContract().max_event_bytes - len(orjson.dumps(base.to_json()))
    event = door(action(context={**base.body["context"], "k0": "x" * (50_000 + pad)}))
    assert len(orjson.dumps(event.to_json())) == InputContract().max_event_bytes
    body = {"chain": "t/0", "seq": 0, "prevHash": "", "hash": "h", "signature": "s",
            "signerId": "k", "sourceTopic": "t", "sourcePartition": 0, "sourceOffset": 0,
            "payload": {**event.to_json(), "deep": {"a": nested(DERIVED_DEPTH + 25)}}}  # fmt: skip
    link = replace(action(), event_type="auditRecord", body=body)
    assert len(orjson.dumps(link.to_json())) > InputContract().max_event_bytes
    assert CODEC.decode(CODEC.encode(link)).body == body
    # A dead letter copying a 512 KiB value is valid, however the source broke.
    dead = dead_letter(processor="p", reason="r" * 9000, error_type="E", topic="t", partition=0,
                       offset=1, key=b"k", value=b"\x00" * 512 * 1024)  # fmt: skip
    assert CODEC.decode(CODEC.encode(dead)) == dead


def _link(payload: Any) -> Event:
    body = {"chain": "t/0", "seq": 0, "prevHash": "", "hash": "h", "signature": "s",
            "signerId": "k", "sourceTopic": "t", "sourcePartition": 0, "sourceOffset": 0,
            "payload": payload}  # fmt: skip
    return replace(action(), event_type="auditRecord", body=body)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"eventId": "not-a-uuid"}, "body.payload.eventId"),
        ({"eventId": ID.upper()}, "body.payload.eventId"),
        ({"eventType": 7}, "body.payload.eventType"),
        ({"ts": "yesterday"}, "body.payload.ts"),
        ({"metadata": {"k": 1}}, "body.payload.metadata"),
    ],
)
def test_a_link_whose_payload_cannot_make_its_audit_row_is_refused(
    change: dict[str, Any], field: str
) -> None:
    # Found by the corpus: a link forged onto the chain topic with a non-UUID
    # eventId was dead-lettered by the projector (Postgres refused the row) but
    # verified by replay. The decoder now refuses it for both.
    good = _link(action().to_json())
    assert CODEC.decode(CODEC.encode(good)).body == good.body
    with pytest.raises(ValidationError) as exc:
        CODEC.decode(CODEC.encode(_link({**action().to_json(), **change})))
    assert exc.value.field == field
    with pytest.raises(ValidationError):
        CODEC.decode(CODEC.encode(_link([1, 2])))


@pytest.mark.parametrize(
    "value",
    [2**53, -(2**53), 2**64, 10**30],
)
def test_integers_outside_ijson_are_refused_even_when_orjson_reads_a_float(value: int) -> None:
    # kernel-json is written as given when the value is already text.
    with pytest.raises(ValidationError, match="I-JSON range") as exc:
        CODEC.decode(CODEC.encode(action(context=f'{{"n":{value}}}')))
    assert exc.value.field == "body.context.n"


@pytest.mark.parametrize("value", [-2.202225678814427e16, 9007199254740994.0, 1e300, -1.5e17])
def test_floats_beyond_2_53_are_refused_since_jsonb_would_store_an_unverifiable_integer(
    value: float,
) -> None:
    # Found by the corpus: Postgres keeps -2.202225678814427e16 as the integer
    # -22022256788144270, which has no RFC 8785 form, so audit-verify failed.
    reason = refused(action(context={"amount": value}), "body.context.amount")
    assert "2^53" in reason
    assert CODEC.decode(wire(action(context={"amount": 2.0**53 - 1}))).body["context"] == {
        "amount": 2.0**53 - 1
    }


# -- timestamps -------------------------------------------------------------
def test_ts_before_2000_is_refused() -> None:
    assert "before the oldest accepted time" in refused(replace(action(), ts_ms=0), "ts")
    CODEC.decode(wire(replace(action(), ts_ms=OLDEST_TS_MS)))


def test_the_issues_year_9999_ts_is_refused_relative_to_the_log_timestamp() -> None:
    event = replace(action(), ts_ms=NEWEST_TS_MS)
    reason = refused(event, "ts", log_ts_ms=TS)
    assert "9999-12-31T23:59:59.999Z is more than 3600 s after 2025-12-01" in reason
    # Without a reference (a tool reading bytes) only the fixed bounds apply...
    assert CODEC.decode(wire(event)).ts_ms == NEWEST_TS_MS
    # ...and past them nothing decodes.
    with pytest.raises(ValidationError, match="after the year 9999"):
        CODEC.decode(wire(replace(event, ts_ms=NEWEST_TS_MS + 1)))


def test_the_skew_is_relative_to_the_log_timestamp_so_replay_is_deterministic() -> None:
    skew = InputContract().future_skew_ms
    data = wire(replace(action(), ts_ms=TS + skew))
    assert CODEC.decode(data, log_ts_ms=TS).ts_ms == TS + skew
    with pytest.raises(ValidationError):
        CODEC.decode(data, log_ts_ms=TS - 1)
    with pytest.raises(ValidationError, match="after"):
        Event.from_json({**action().to_json(), "ts": format_ts(now_ms() + skew + 60_000)})


# -- the record itself -------------------------------------------------------
def test_trailing_bytes_after_the_avro_body_are_refused() -> None:
    with pytest.raises(SchemaError, match="2 bytes after the end of the kernelAction/v1 record"):
        CODEC.decode(wire(action()) + b"\x00\x00")


def test_an_envelope_event_type_other_than_the_writer_schema_is_refused() -> None:
    schema = catalog().newest("kernelAction")
    datum = {**action().to_avro(), "eventType": "policyChange"}
    buf = io.BytesIO()
    buf.write(SINGLE_OBJECT_MAGIC + schema.fingerprint)
    schemaless_writer(buf, schema.parsed, datum)
    with pytest.raises(ValidationError) as exc:
        CODEC.decode(buf.getvalue())
    assert exc.value.field == "eventType"
    assert "kernelAction/v1" in exc.value.reason


def test_duplicate_keys_in_a_kernel_json_field_are_refused_naming_key_and_field() -> None:
    data = CODEC.encode(action(context='{"a":{"b":1,"b":2}}'))
    with pytest.raises(ValidationError, match="duplicate object key 'b' in this field") as exc:
        CODEC.decode(data)
    assert exc.value.field == "body.context"


def test_non_canonical_kernel_json_without_duplicates_reads_as_its_value() -> None:
    data = CODEC.encode(action(context='{ "z": [1, 2.5], "a": "x" }'))
    assert CODEC.decode(data).body["context"] == {"z": [1, 2.5], "a": "x"}


@pytest.mark.parametrize("event_id", ["not-a-uuid", ID.upper(), "", ID + "0"])
def test_an_event_id_that_is_not_a_canonical_uuid_is_refused(event_id: str) -> None:
    with pytest.raises(ValidationError) as exc:
        CODEC.decode(wire(replace(action(), event_id=event_id)))
    assert exc.value.field == "eventId"


def test_a_body_uuid_field_is_checked_too() -> None:
    check = new_event("policyCheck", "sentinel", "s", _check_body())
    data = CODEC.encode(replace(check, body={**check.body, "policyCheckId": "x"}))
    with pytest.raises(ValidationError) as exc:
        CODEC.decode(data)
    assert exc.value.field == "body.policyCheckId"


def _check_body() -> dict[str, Any]:
    schema = catalog().newest("policyCheck")
    body: dict[str, Any] = {}
    for f in schema.raw["fields"][-1]["type"]["fields"]:
        if f["name"] in schema.json_fields:
            body[f["name"]] = {}
        elif "default" not in f:
            t = f["type"]
            kind = t.get("type") if isinstance(t, dict) else t
            body[f["name"]] = {"string": "x", "boolean": False, "long": 0, "int": 0}.get(
                kind if isinstance(kind, str) else "string", "x"
            )
    body["policyCheckId"] = ID
    body["decision"] = "allow"
    return body


@pytest.mark.parametrize(
    ("where", "field"),
    [("subject", "subject"), ("requestId", "body.requestId"), ("action", "body.action")],
)
def test_the_issues_nul_in_subject_request_id_and_action_is_refused(where: str, field: str) -> None:
    event = action()
    event = (
        replace(event, subject="a\x00b")
        if where == "subject"
        else replace(event, body={**event.body, where: "a\x00b"})
    )
    assert "NUL" in refused(event, field)


def test_nul_inside_kernel_json_is_refused_with_its_path() -> None:
    assert "NUL" in refused(action(context={"k": ["ok", "a\x00"]}), "body.context.k[1]")


def test_invalid_utf8_in_an_avro_string_is_a_schema_error() -> None:
    data = wire(action(context={}, resource="abc"))
    with pytest.raises(SchemaError, match="corrupt"):
        CODEC.decode(data.replace(b"abc", b"a\xffc"))


# -- JSON text at the doors ----------------------------------------------------
def test_invalid_utf8_text_names_the_byte() -> None:
    with pytest.raises(MalformedJSONError, match="not valid UTF-8 at byte 9"):
        loads_ijson(b'{"a": "xy\xff"}')


@pytest.mark.parametrize("depth", [33, 990, 1000, 5000])
def test_deep_text_is_a_limit_error_naming_the_path_never_a_recursion_error(depth: int) -> None:
    text = '{"body": {"context": {"a": ' + "[" * depth + "]" * depth + "}}}"
    with pytest.raises(LimitError, match="too deep: nested over 32 levels") as exc:
        loads_ijson(text, max_depth=32)
    assert exc.value.field == "body.context.a" + "[0]" * 29


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    assert loads_ijson('{"s": "' + "[{" * 100 + '"}', max_depth=2) == {"s": "[{" * 100}


def test_raw_u2028_and_u0085_inside_a_string_do_not_split_a_line() -> None:
    line = action(context={"t": "a\u2028b\u0085c\u2029d"}).to_json()
    data = orjson.dumps(line) + b"\n" + orjson.dumps(line) + b"\n"
    assert b"\xe2\x80\xa8" in data  # raw, as orjson writes it
    parsed = parse_lines(split_lines(data), CODEC)
    assert parsed.rejects == []
    assert [n for n, _, _ in parsed.events] == [1, 2]
    assert parsed.events[0][1].body["context"]["t"] == "a\u2028b\u0085c\u2029d"


def test_publish_lines_name_the_line_for_utf8_depth_and_size() -> None:
    good = orjson.dumps(action().to_json())
    deep = orjson.dumps(action(context={"a": nested(40)}).to_json())
    big = orjson.dumps(action(context={f"k{i}": "x" * 60_000 for i in range(16)}).to_json())
    lines = [good, b'{"eventType": "\xc3"}', deep, b"[" * 5000, big]
    rejects = {r.line: r for r in parse_lines(lines, CODEC).rejects}
    assert rejects[2].describe() == "line 2: not valid UTF-8 at byte 15"
    assert rejects[3].field == "body.context.a" + "[0]" * 29 and "too deep" in rejects[3].reason
    assert rejects[4].field == "[0]" * 32 and "too deep" in rejects[4].reason
    assert "KERNEL_MAX_EVENT_BYTES" in rejects[5].reason
    assert sorted(rejects) == [2, 3, 4, 5]


# -- configuration -------------------------------------------------------------
def test_limits_without_headroom_are_refused_naming_both_variables() -> None:
    with pytest.raises(ConfigError, match=r"KERNEL_MAX_EVENT_BYTES.*KERNEL_MAX_RECORD_BYTES"):
        InputContract(max_event_bytes=990_000, max_record_bytes=1_000_000)
    with pytest.raises(ConfigError, match="KERNEL_MAX_EVENT_BYTES"):
        Settings.from_env({"KERNEL_MAX_EVENT_BYTES": "1000000"})


def test_the_contract_is_built_from_settings() -> None:
    s = Settings.from_env(
        {"KERNEL_MAX_JSON_DEPTH": "8", "KERNEL_MAX_STRING_BYTES": "10",
         "KERNEL_MAX_ARRAY_ITEMS": "3", "KERNEL_TS_FUTURE_SKEW_S": "5",
         "KERNEL_MAX_EVENT_BYTES": "5000", "KERNEL_MAX_RECORD_BYTES": "30000"}
    )  # fmt: skip
    c = InputContract.from_settings(s)
    assert (c.max_depth, c.max_string_bytes, c.max_array_items, c.max_object_members) == (
        8, 10, 3, 3,
    )  # fmt: skip
    assert (c.future_skew_ms, c.max_event_bytes, c.max_record_bytes) == (5000, 5000, 30000)


# -- properties ----------------------------------------------------------------
TIGHT = InputContract(
    max_depth=5, max_string_bytes=12, max_array_items=3, max_object_members=3,
    max_event_bytes=2000, max_record_bytes=20_000,
)  # fmt: skip
hostile_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=16),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=14), inner, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(value=hostile_values, depth=st.integers(1, 4))
def test_json_fields_fast_path_agrees_with_the_walk(value: Any, depth: int) -> None:
    try:
        text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:
        return  # an integer beyond 64 bits: orjson cannot write it, so never canonical
    try:
        TIGHT.check_value(value, "f", depth=depth)
        expected: str | None = None
    except ValidationError as exc:
        expected = exc.field
    try:
        assert TIGHT.json_field(text, "f", depth=depth) == value
        got: str | None = None
    except ValidationError as exc:
        got = exc.field
    if expected is None:
        assert got is None
    else:
        assert got is not None


@settings(max_examples=300, deadline=None)
@given(value=hostile_values)
def test_loads_ijson_and_the_contract_agree_on_text_from_any_writer(value: Any) -> None:
    if not _dumpable(value):
        return  # beyond 64 bits: see the integer test above
    text = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    try:
        parsed = loads_ijson(text, max_depth=TIGHT.max_depth)
        TIGHT.check_value(parsed)
    except ValidationError:
        return
    assert parsed == value


def _dumpable(value: Any) -> bool:
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        return False
    return True


def _mutations() -> st.SearchStrategy[tuple[str, int, int]]:
    return st.tuples(st.sampled_from(["flip", "cut", "insert", "dup"]), st.integers(0, 2000),
                     st.integers(0, 255))  # fmt: skip


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=events(), mutations=st.lists(_mutations(), max_size=4))
def test_decode_of_mutated_records_raises_only_kernel_errors(
    event: Event, mutations: list[tuple[str, int, int]]
) -> None:
    data = bytearray(CODEC.encode(event))
    for kind, where, byte in mutations:
        at = where % (len(data) + 1)
        if kind == "flip" and at < len(data):
            data[at] ^= byte or 1
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = bytes([byte])
        elif kind == "dup":
            data[at:at] = data[at : at + 8]
        if not data:
            data = bytearray(b"\xc3")
    with contextlib.suppress(KernelError):
        CODEC.decode(bytes(data), log_ts_ms=TS)


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=300), framed=st.booleans())
def test_decode_of_random_bytes_raises_only_kernel_errors(data: bytes, framed: bool) -> None:
    if framed:  # past the framing, into fastavro, for a real schema
        schema = catalog().all()[len(data) % len(catalog().all())]
        data = SINGLE_OBJECT_MAGIC + schema.fingerprint + data
    with contextlib.suppress(KernelError):
        CODEC.decode(data)


@settings(max_examples=60, deadline=None)
@given(
    depth=st.integers(0, 1100),
    size=st.sampled_from([0, 65_537, 300_000, 990_000]),
    items=st.sampled_from([0, 10_001]),
)
def test_decode_of_deep_and_huge_records_raises_only_kernel_errors(
    depth: int, size: int, items: int
) -> None:
    text = "[" * depth + "]" * depth  # kernel-json text written as given
    context = (
        '{"d":' + (text or "0") + ',"s":"' + "x" * size + '","a":[' + ",".join(["0"] * items) + "]}"
    )
    event = action(context=context)
    try:
        data = CODEC.encode(event)
    except KernelError:
        return
    try:
        decoded = CODEC.decode(data, log_ts_ms=TS)
    except KernelError:
        return
    assert depth <= 29 and size <= 65_536 and items <= 10_000
    assert decoded.body["context"]["s"] == "x" * size


@settings(max_examples=200, deadline=None)
@given(event=events(), value=json_values)
def test_every_event_the_door_accepts_decodes(event: Event, value: Any) -> None:
    if "context" in event.body:
        event = replace(event, body={**event.body, "context": {"v": value}})
    try:
        accepted = Event.from_json(event.to_json())
        data = CODEC.encode_checked(accepted)
    except KernelError:
        return
    assert CODEC.decode(data, log_ts_ms=now_ms()).to_json() == accepted.to_json()


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


plain_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(st.characters(
        codec="utf-8", exclude_characters="\x00"), max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=4), inner,
        max_size=3),
    max_leaves=25,
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(value=plain_values, max_depth=st.integers(1, 6), indent=st.booleans())
def test_the_text_depth_scanner_agrees_with_the_walk_on_verdict_and_path(
    value: Any, max_depth: int, indent: bool
) -> None:
    # loads_ijson bounds depth on the text (strings skipped whole); the contract
    # walks the value: both must name the same first too-deep container.
    text = orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else 0).decode()
    walk = InputContract(max_depth=max_depth)
    try:
        walk.check_value(value)
        expected = None
    except LimitError as exc:
        expected = exc.field or ""
    try:
        assert loads_ijson(text, max_depth=max_depth) == value
        got = None
    except LimitError as exc:
        got = exc.field or ""
    assert (expected is None) == (_depth(value) <= max_depth)
    assert got == expected


@pytest.mark.parametrize("metadata", [{"k\x00": "v"}, {"k": "v\x00"}, {"k": "x" * 65_537}])
def test_metadata_keys_and_values_are_checked_too(metadata: dict[str, str]) -> None:
    with pytest.raises(ValidationError) as exc:
        CODEC.decode(wire(replace(action(), metadata=metadata)))
    assert (exc.value.field or "").startswith("metadata")
