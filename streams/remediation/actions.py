"""The registered remediation actions (KERNEL_REMEDIATION_ACTIONS), validated.

The file is a JSON object, action name -> spec::

    {"page-oncall": {"type": "webhook", "url": "https://hooks.example/kernel",
                     "timeoutS": 2, "retries": 3, "secretFile": "/run/secrets/hook",
                     "policies": ["payments-*"], "highRisk": false},
     "quarantine":  {"type": "quarantine", "policies": ["*"], "highRisk": true}}

``policies`` are globs over the deciding policy's id: a ``remediate`` decision
of a matching policy requests this action (no ``policies``: operator requests
only). ``highRisk`` makes every request of the action wait for approval.
A webhook's worst case (every attempt timing out, plus the backoff between
them) must fit :data:`MAX_WORST_CASE_S`: the worker holds its input while it
calls, and its heartbeat (KERNEL_HEALTH_MAX_AGE_S) must outlast the call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import translate
from typing import Any, Literal

from streams.remediation.errors import ActionConfigError

__all__ = ["MAX_WORST_CASE_S", "ActionSpec", "backoff_s", "parse_actions"]

MAX_WORST_CASE_S = 50.0
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_FIELDS = {
    "webhook": {"type", "url", "timeoutS", "retries", "secretFile", "secretEnv", "backoffS",
                "policies", "highRisk"},
    "quarantine": {"type", "policies", "highRisk"},
}  # fmt: skip


def backoff_s(first: float, attempt: int) -> float:
    """The pause before retry ``attempt`` (1-based): ``first * 2**(attempt-1)``."""
    return float(first * 2 ** (attempt - 1))


@dataclass(frozen=True, slots=True)
class ActionSpec:
    name: str
    type: Literal["webhook", "quarantine"]
    policies: tuple[str, ...] = ()
    high_risk: bool = False
    url: str | None = None
    timeout_s: float = 5.0
    retries: int = 3
    backoff_s: float = 0.5
    secret_file: str | None = None
    secret_env: str | None = None

    def remediates(self, policy_id: str | None) -> bool:
        """A ``remediate`` decision of ``policy_id`` requests this action."""
        if policy_id is None or not self.policies:
            return False
        pattern = "|".join(f"(?:{translate(p)})" for p in self.policies)
        return re.fullmatch(pattern, policy_id) is not None

    def worst_case_s(self) -> float:
        waits = sum(backoff_s(self.backoff_s, a) for a in range(1, self.retries + 1))
        return self.timeout_s * (self.retries + 1) + waits


def parse_actions(data: Any, *, where: str = "KERNEL_REMEDIATION_ACTIONS") -> dict[str, ActionSpec]:
    """Validate the decoded file; errors name the action and the field."""
    if not isinstance(data, dict):
        raise ActionConfigError(f"{where}: must be a JSON object of action name -> spec")
    return {name: _spec(name, spec, where) for name, spec in sorted(data.items())}


def _spec(name: str, spec: Any, where: str) -> ActionSpec:
    at = f"{where}: action {name!r}"
    if not _NAME.fullmatch(name):
        raise ActionConfigError(f"{at}: a name is 1-64 of a-z 0-9 . _ - starting with a-z or 0-9")
    if not isinstance(spec, dict):
        raise ActionConfigError(f"{at}: must be an object")
    kind = spec.get("type")
    if kind not in _FIELDS:
        raise ActionConfigError(f"{at}: type must be webhook or quarantine, got {kind!r}")
    unknown = sorted(set(spec) - _FIELDS[kind])
    if unknown:
        raise ActionConfigError(f"{at}: unknown field {unknown[0]!r}")
    policies = spec.get("policies", [])
    if not isinstance(policies, list) or not all(isinstance(p, str) and p for p in policies):
        raise ActionConfigError(f"{at}: policies must be a list of policy id globs")
    high_risk = spec.get("highRisk", False)
    if not isinstance(high_risk, bool):
        raise ActionConfigError(f"{at}: highRisk must be true or false")
    if kind == "quarantine":
        return ActionSpec(name, "quarantine", tuple(policies), high_risk)
    url = spec.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ActionConfigError(f"{at}: url must be an http:// or https:// URL")
    timeout_s = _number(spec, "timeoutS", 5.0, at, low=0.05)
    backoff = _number(spec, "backoffS", 0.5, at, low=0.0)
    retries = spec.get("retries", 3)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10:
        raise ActionConfigError(f"{at}: retries must be an integer from 0 to 10")
    secret_file, secret_env = spec.get("secretFile"), spec.get("secretEnv")
    if (secret_file is None) == (secret_env is None):
        raise ActionConfigError(
            f"{at}: a webhook signs its body: give exactly one of secretFile (a file holding "
            "the HMAC secret) or secretEnv (the name of an environment variable holding it)"
        )
    for field, value in (("secretFile", secret_file), ("secretEnv", secret_env)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ActionConfigError(f"{at}: {field} must be a non-empty string")
    out = ActionSpec(
        name, "webhook", tuple(policies), high_risk, url, timeout_s, retries, backoff,
        secret_file, secret_env,
    )  # fmt: skip
    if out.worst_case_s() > MAX_WORST_CASE_S:
        raise ActionConfigError(
            f"{at}: timeoutS x (retries + 1) plus the backoff is {out.worst_case_s():.1f}s, "
            f"over {MAX_WORST_CASE_S:.0f}s: lower timeoutS, retries or backoffS"
        )
    return out


def _number(spec: Mapping[str, Any], field: str, default: float, at: str, *, low: float) -> float:
    value = spec.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= 60:
        raise ActionConfigError(f"{at}: {field} must be a number of seconds from {low} to 60")
    return float(value)
