"""Rationale templates: the decision's explanation, rendered from its own evaluation.

A template is text with ``{placeholder}`` fields; ``{{`` and ``}}`` are literal
braces. A placeholder is either a fact about the deciding policy --
``{policy.id}``, ``{policy.name}``, ``{policy.version}``, ``{policy.severity}``,
``{effect}`` -- or an attribute path of the action (``{actor}``,
``{context.amount}``). Attribute placeholders are added to the paths the
policy reads, so the values a rationale quotes are exactly values recorded in
the evidence: the explanation cannot cite something the record does not hold.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.sentinel.errors import PolicyValidationError
from streams.sentinel.rules import ROOTS, AttrPath, format_path

__all__ = ["POLICY_FIELDS", "RationaleTemplate", "compile_template"]

POLICY_FIELDS = ("policy.id", "policy.name", "policy.version", "policy.severity", "effect")
_PART = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]|[^{}]+")
_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


@dataclass(frozen=True, slots=True)
class RationaleTemplate:
    # (literal text, None) or (None, placeholder name)
    parts: tuple[tuple[str | None, str | None], ...]
    paths: tuple[AttrPath, ...]

    def render(self, facts: Mapping[str, Any], values: Mapping[str, Any]) -> str:
        """``facts``: the POLICY_FIELDS; ``values``: attribute values read, by path."""
        out: list[str] = []
        for text, name in self.parts:
            if text is not None:
                out.append(text)
                continue
            assert name is not None
            value = facts[name] if name in facts else values.get(name, _ABSENT)
            out.append(_show(value))
        return "".join(out)


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT = _Absent()


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "<absent>"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def compile_template(text: str) -> RationaleTemplate:
    parts: list[tuple[str | None, str | None]] = []
    paths: dict[AttrPath, None] = {}
    for m in _PART.finditer(text):
        token = m.group()
        if token in ("{{", "}}"):
            parts.append((token[0], None))
        elif token in ("{", "}"):
            raise PolicyValidationError(
                f"unbalanced {token!r} at character {m.start()}; write {token * 2} for a brace",
                field="rationale",
            )
        elif token.startswith("{"):
            name = (m.group(1) or "").strip()
            if name in POLICY_FIELDS:
                parts.append((None, name))
                continue
            if not _NAME.fullmatch(name) or name.split(".")[0] not in ROOTS:
                raise PolicyValidationError(
                    f"unknown placeholder {{{name}}}; use {', '.join(POLICY_FIELDS)} "
                    f"or an action attribute ({', '.join(ROOTS)}, context.<key>)",
                    field="rationale",
                )
            path = tuple(name.split("."))
            paths[path] = None
            parts.append((None, format_path(path)))
        else:
            parts.append((token, None))
    return RationaleTemplate(tuple(parts), tuple(paths))
