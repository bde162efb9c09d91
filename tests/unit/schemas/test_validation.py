from __future__ import annotations

import pytest
from hypothesis import given

from schemas.errors import ValidationError
from schemas.events import Event
from schemas.ijson import loads_ijson
from tests.strategies import json_values


def _event(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "eventType": "kernelAction",
        "actor": "svc",
        "subject": "acct-1",
        "body": {"action": "pay", "context": {"amount": 5}},
    }
    base.update(over)
    return base


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"a": 9007199254740992}', "I-JSON range"),
        ('{"a": -9007199254740993}', "I-JSON range"),
        ('{"a": NaN}', "not an I-JSON number"),
        ('{"a": Infinity}', "not an I-JSON number"),
        ('{"a": 1, "a": 2}', "duplicate object key"),
        ('{"a": "\\ud800"}', "lone surrogate"),
        ('{"a": ', "malformed JSON"),
    ],
)
def test_non_ijson_is_rejected(text: str, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        loads_ijson(text)


def test_largest_safe_integer_is_accepted() -> None:
    assert loads_ijson('{"a": 9007199254740991}') == {"a": 9007199254740991}


@given(json_values)
def test_ijson_values_survive_a_round_trip(value: object) -> None:
    import json

    assert loads_ijson(json.dumps(value)) == value


@pytest.mark.parametrize(
    ("mutation", "field"),
    [
        ({"eventType": "nope"}, "eventType"),
        ({"actor": ""}, "actor"),
        ({"actor": 5}, "actor"),
        ({"body": {"context": {}}}, "body.action"),
        ({"body": {"action": 7}}, "body.action"),
        ({"body": {"action": "x", "extra": 1}}, "body.extra"),
        ({"body": {"action": "x", "context": {"n": 2**60}}}, "body.context.n"),
        ({"eventId": "not-a-uuid"}, "eventId"),
        ({"ts": "yesterday"}, "ts"),
        ({"schemaVersion": 99}, "schemaVersion"),
        ({"metadata": {"k": 1}}, "metadata"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_invalid_events_name_the_field(mutation: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Event.from_json(_event(**mutation))
    assert info.value.field == field


def test_missing_required_envelope_field() -> None:
    data = _event()
    del data["subject"]
    with pytest.raises(ValidationError) as info:
        Event.from_json(data)
    assert info.value.field == "subject"


def test_defaults_fill_optional_body_fields() -> None:
    event = Event.from_json(_event(body={"action": "read"}))
    assert event.body == {"action": "read", "resource": None, "requestId": None, "context": {}}
    assert len(event.event_id) == 36
