"""The synchronous check's request: parsed and validated before anything is evaluated.

``POST /sentinel/check`` takes ``{action, actor?, resource?, context?,
requestId?, subject?}``; only ``action`` is required. The body is read as raw
bytes and parsed here rather than by the web framework's models, because the
checks a decision record needs are stricter than JSON's: I-JSON numbers
(:mod:`schemas.ijson` -- a 2^60 amount would be read differently by the audit
verifier), no duplicate keys, a size limit checked before parsing, and unknown
fields refused (a typo like ``contxt`` must not silently evaluate an empty
context). The input contract (:mod:`schemas.contract`) bounds the rest as
for a ``kernelAction`` (the request's fields sit where an action's body
fields do, so ``context`` is at depth 3): nesting, string sizes and names, so
the decision record derived from it always fits. Every error names the field
and the reason; the HTTP layer maps :class:`RequestTooLargeError` to 413,
:class:`MalformedRequestError` (not UTF-8, not I-JSON) to 400 and any other
:class:`~schemas.errors.ValidationError` (a limit, a wrong field) to 422.

Defaults: ``actor`` is ``"anonymous"``; ``subject`` is the ``resource`` when
given, else the actor (the unit whose policyChecks must stay ordered).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from schemas.contract import InputContract, LimitError, default_contract
from schemas.errors import ValidationError
from schemas.ijson import loads_ijson

__all__ = [
    "MAX_REQUEST_BYTES",
    "CheckRequest",
    "MalformedRequestError",
    "RequestTooLargeError",
    "parse_check_request",
]

MAX_REQUEST_BYTES = 64 * 1024
_BODY_DEPTH = 2  # the request object stands where an action's body does
_FIELDS = ("action", "actor", "resource", "context", "requestId", "subject")


class MalformedRequestError(ValidationError):
    """The body is not I-JSON at all (HTTP 400)."""


class RequestTooLargeError(ValidationError):
    """The body is over the size limit (HTTP 413)."""


@dataclass(frozen=True, slots=True)
class CheckRequest:
    action: str
    actor: str = "anonymous"
    resource: str | None = None
    context: dict[str, Any] | None = None
    request_id: str | None = None
    subject: str | None = None
    claimed_actor: str | None = None  # the body's ``actor``, as written

    def called_by(self, caller: str) -> CheckRequest:
        """This request as ``caller`` makes it: the authenticated identity is the actor;
        what the body claimed stays in ``claimed_actor`` (``claimedActor`` to rules)."""
        return replace(self, actor=caller)

    @property
    def subject_or_default(self) -> str:
        return self.subject or self.resource or self.actor

    def activation_values(self, ts_ms: int) -> dict[str, Any]:
        """The attributes a rule reads: the same shape as a kernelAction's."""
        return {
            "action": self.action,
            "actor": self.actor,
            "subject": self.subject_or_default,
            "resource": self.resource,
            "context": self.context or {},
            "claimedActor": self.claimed_actor,
            "eventType": "kernelAction",
            "ts": ts_ms,
        }


def parse_check_request(
    raw: bytes, max_bytes: int = MAX_REQUEST_BYTES, *, contract: InputContract | None = None
) -> CheckRequest:
    contract = contract or default_contract()
    if len(raw) > max_bytes:
        raise RequestTooLargeError(f"the body is {len(raw)} bytes; the limit is {max_bytes}")
    if not raw.strip():
        raise MalformedRequestError("the body is empty; send a JSON object with at least 'action'")
    try:
        data = loads_ijson(raw, max_depth=contract.max_depth - _BODY_DEPTH + 1)
    except LimitError:
        raise
    except ValidationError as exc:
        raise MalformedRequestError(exc.reason, field=exc.field) from exc
    if not isinstance(data, dict):
        raise ValidationError("the body must be a JSON object")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ValidationError(f"unknown field; known: {', '.join(_FIELDS)}", field=unknown[0])
    if "action" not in data:
        raise ValidationError("required field is missing", field="action")
    context = data.get("context")
    if context is not None and not isinstance(context, dict):
        raise ValidationError(f"must be an object, got {_kind(context)}", field="context")
    if context:
        contract.check_value(context, "context", depth=_BODY_DEPTH + 1)
    return CheckRequest(
        action=_name(data, "action", contract, required=True) or "",
        actor=_name(data, "actor", contract) or "anonymous",
        claimed_actor=data.get("actor") if isinstance(data.get("actor"), str) else None,
        resource=_name(data, "resource", contract),
        context=context,
        request_id=_name(data, "requestId", contract),
        subject=_name(data, "subject", contract),
    )


def _name(
    data: dict[str, Any], field: str, contract: InputContract, *, required: bool = False
) -> str | None:
    value = data.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"must be a string, got {_kind(value)}", field=field)
    if not value.strip():
        raise ValidationError("must be a non-empty string", field=field)
    if len(value.encode()) > contract.max_name_bytes:
        raise ValidationError(f"longer than {contract.max_name_bytes} bytes", field=field)
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
