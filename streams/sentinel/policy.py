"""The policy model and its JSON mapping.

A policy version is immutable once created: a change of rule, scope or effect
is a new version; only the lifecycle state (and, with it, the canary percent)
moves. The JSON mapping is the one the CLI reads, the API returns and the
``policyChange`` event carries (``policy`` field, I-JSON)::

    {"id": "payments-large-transfer", "version": 1, "name": "Large transfers",
     "severity": "HIGH",
     "scope": {"eventTypes": ["kernelAction"], "actions": ["payments.*"],
               "actors": [], "subjects": []},
     "rule": "context.amount > 10000", "effect": "escalate",
     "rationale": "transfer of {context.amount} by {actor} needs review",
     "fallback": "deny", "state": "draft", "canaryPercent": 0}

Scope patterns are shell globs (``fnmatch``, case-sensitive); an empty list
means "any". Structural checks live here; whether the rule compiles and reads
only kernel-action attributes is :mod:`streams.sentinel.rules`' job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum
from fnmatch import translate
from typing import Any, TypeVar

from schemas.catalog import catalog
from schemas.errors import ValidationError
from schemas.ijson import check_ijson, loads_ijson
from streams.rollout.gates import Thresholds
from streams.sentinel.errors import PolicyValidationError

__all__ = [
    "MAX_RULE_CHARS",
    "Effect",
    "Policy",
    "Scope",
    "Severity",
    "State",
    "glob_regex",
    "loads_policy",
]

MAX_RULE_CHARS = 4096
_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
_FIELDS = {
    "id",
    "version",
    "name",
    "severity",
    "scope",
    "rule",
    "effect",
    "rationale",
    "fallback",
    "state",
    "canaryPercent",
    "rollout",
}
_SCOPE_FIELDS = {"eventTypes", "subjects", "actors", "actions"}
E = TypeVar("E", bound=StrEnum)


class Severity(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class Effect(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    QUARANTINE = "quarantine"
    REMEDIATE = "remediate"
    ESCALATE = "escalate"


class State(StrEnum):
    DRAFT = "draft"
    TEST = "test"
    CANARY = "canary"
    ACTIVE = "active"
    DEPRECATED = "deprecated"


@dataclass(frozen=True, slots=True)
class Scope:
    """Which events a policy applies to: event types, then optional globs."""

    event_types: tuple[str, ...]
    subjects: tuple[str, ...] = ()
    actors: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "eventTypes": list(self.event_types),
            "subjects": list(self.subjects),
            "actors": list(self.actors),
            "actions": list(self.actions),
        }

    @classmethod
    def from_json(cls, data: Any) -> Scope:
        if not isinstance(data, dict):
            raise PolicyValidationError("must be an object", field="scope")
        unknown = sorted(set(data) - _SCOPE_FIELDS)
        if unknown:
            raise PolicyValidationError("unknown field", field=f"scope.{unknown[0]}")
        event_types = _str_list(data.get("eventTypes"), "scope.eventTypes", required=True)
        known = catalog().event_types
        for i, t in enumerate(event_types):
            if t not in known:
                raise PolicyValidationError(
                    f"unknown event type {t!r}; known: {', '.join(known)}",
                    field=f"scope.eventTypes[{i}]",
                )
        return cls(
            event_types=event_types,
            subjects=_str_list(data.get("subjects"), "scope.subjects"),
            actors=_str_list(data.get("actors"), "scope.actors"),
            actions=_str_list(data.get("actions"), "scope.actions"),
        )


def glob_regex(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One compiled regex for a list of globs; None means "matches anything"."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{translate(p)})" for p in patterns))


@dataclass(frozen=True, slots=True)
class Policy:
    policy_id: str
    version: int
    name: str
    severity: Severity
    scope: Scope
    rule: str
    effect: Effect
    rationale: str
    fallback: Effect = Effect.DENY
    state: State = State.DRAFT
    canary_percent: float = 0.0
    # the canary gates' settings (streams.rollout.gates.Thresholds, camelCase keys);
    # empty: the defaults. Omitted from the JSON when empty, so older records are unchanged.
    rollout: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.fallback is Effect.ALLOW:
            raise PolicyValidationError(
                "must not be allow: an enforced policy that fails to evaluate fails closed",
                field="fallback",
            )

    @property
    def key(self) -> tuple[str, int]:
        return (self.policy_id, self.version)

    def with_state(self, state: State, canary_percent: float | None = None) -> Policy:
        percent = self.canary_percent if canary_percent is None else canary_percent
        return replace(self, state=state, canary_percent=percent)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.policy_id,
            "version": self.version,
            "name": self.name,
            "severity": self.severity.value,
            "scope": self.scope.to_json(),
            "rule": self.rule,
            "effect": self.effect.value,
            "rationale": self.rationale,
            "fallback": self.fallback.value,
            "state": self.state.value,
            "canaryPercent": self.canary_percent,
        } | ({"rollout": dict(self.rollout)} if self.rollout else {})

    @classmethod
    def from_json(cls, data: Any) -> Policy:
        """Validate a JSON policy; errors name the offending field."""
        if not isinstance(data, dict):
            raise PolicyValidationError("a policy must be a JSON object")
        try:
            check_ijson(data)
        except ValidationError as exc:
            raise PolicyValidationError(exc.reason, field=exc.field) from exc
        unknown = sorted(set(data) - _FIELDS)
        if unknown:
            raise PolicyValidationError(
                f"unknown field; known: {', '.join(sorted(_FIELDS))}", field=unknown[0]
            )
        policy_id = _str(data, "id")
        if not _ID.fullmatch(policy_id):
            raise PolicyValidationError(
                "must be 1-128 of a-z 0-9 . _ - starting with a letter or digit", field="id"
            )
        version = data.get("version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version < 2**31:
            raise PolicyValidationError("must be a positive 32-bit integer", field="version")
        rule = _str(data, "rule")
        if len(rule) > MAX_RULE_CHARS:
            raise PolicyValidationError(f"longer than {MAX_RULE_CHARS} characters", field="rule")
        if "scope" not in data:
            raise PolicyValidationError("required field is missing", field="scope")
        percent = data.get("canaryPercent", 0)
        if (
            not isinstance(percent, int | float)
            or isinstance(percent, bool)
            or not 0 <= percent <= 100
        ):
            raise PolicyValidationError("must be a number from 0 to 100", field="canaryPercent")
        return cls(
            policy_id=policy_id,
            version=version,
            name=_str(data, "name"),
            severity=_enum(Severity, data, "severity", None),
            scope=Scope.from_json(data["scope"]),
            rule=rule,
            effect=_enum(Effect, data, "effect", None),
            rationale=_str(data, "rationale"),
            fallback=_enum(Effect, data, "fallback", Effect.DENY),
            state=_enum(State, data, "state", State.DRAFT),
            canary_percent=float(percent),
            rollout=_rollout(data.get("rollout")),
        )


def _rollout(spec: Any) -> tuple[tuple[str, float], ...]:
    """The ``rollout`` settings, validated by the gates' own parser (errors name the key)."""
    if spec is None:
        return ()
    if not isinstance(spec, dict):
        raise PolicyValidationError("must be an object of gate settings", field="rollout")
    try:
        Thresholds.from_spec(spec)
    except ValidationError as exc:
        raise PolicyValidationError(exc.reason, field=exc.field) from exc
    return tuple(sorted((str(k), v) for k, v in spec.items()))


def loads_policy(text: str | bytes) -> Policy:
    """Parse I-JSON text into a validated policy."""
    try:
        data = loads_ijson(text)
    except ValidationError as exc:
        raise PolicyValidationError(exc.reason, field=exc.field) from exc
    return Policy.from_json(data)


def _str(data: dict[str, Any], name: str) -> str:
    if name not in data:
        raise PolicyValidationError("required field is missing", field=name)
    value = data[name]
    if not isinstance(value, str) or not value.strip():
        raise PolicyValidationError("must be a non-empty string", field=name)
    return value


def _str_list(value: Any, path: str, *, required: bool = False) -> tuple[str, ...]:
    if value is None:
        if required:
            raise PolicyValidationError("required field is missing", field=path)
        return ()
    if not isinstance(value, list):
        raise PolicyValidationError("must be a list of strings", field=path)
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise PolicyValidationError("must be a non-empty string", field=f"{path}[{i}]")
    if required and not value:
        raise PolicyValidationError("must name at least one event type", field=path)
    return tuple(value)


def _enum(kind: type[E], data: dict[str, Any], name: str, default: E | None) -> E:
    if name not in data:
        if default is None:
            raise PolicyValidationError("required field is missing", field=name)
        return default
    value = data[name]
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise PolicyValidationError(f"{value!r} is not one of {allowed}", field=name) from None
