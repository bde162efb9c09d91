"""docs/configuration.md is the rendering of ENV_VARS, current and complete."""

from __future__ import annotations

from pathlib import Path

from ops.config import ENV_VARS
from ops.config_doc import render

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def test_the_configuration_page_is_current() -> None:
    assert DOC.read_text() == render(), (
        "docs/configuration.md is stale: .venv/bin/python -m ops.config_doc > docs/configuration.md"
    )


def test_every_setting_is_on_the_page_once() -> None:
    text = render()
    for name in ENV_VARS:
        assert text.count(f"| `{name}` |") == 1, name
