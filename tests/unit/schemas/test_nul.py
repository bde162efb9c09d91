"""NUL (U+0000) is refused at validation: Postgres text and jsonb cannot hold it."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.errors import ValidationError
from schemas.events import new_event
from schemas.ijson import check_ijson, loads_ijson


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("a\x00b", None),
        ({"k": "\x00"}, "k"),
        ({"a": [1, {"b": "x\x00"}]}, "a[1].b"),
        ({"key\x00": 1}, None),
    ],
)
def test_nul_anywhere_is_rejected_with_its_path(value: Any, field: str | None) -> None:
    with pytest.raises(ValidationError, match="NUL") as caught:
        check_ijson(value)
    assert caught.value.field == field


def test_the_escaped_form_in_json_text_is_rejected_too() -> None:
    with pytest.raises(ValidationError, match="Postgres"):
        loads_ijson('{"note": "a\\u0000b"}')


def test_an_event_body_with_nul_never_validates() -> None:
    with pytest.raises(ValidationError, match="NUL") as caught:
        new_event("kernelAction", "svc", "acct", {"action": "pay\x00", "context": {}})
    assert caught.value.field == "body.action"
    with pytest.raises(ValidationError, match="NUL"):
        new_event("kernelAction", "svc", "acct", {"action": "pay", "context": {"m": "\x00"}})


def test_other_control_characters_stay_accepted() -> None:
    check_ijson({"tab": "\t", "bell": "\x07", "del": "\x7f"})
