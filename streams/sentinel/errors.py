"""SentinelNet errors, rooted in :class:`schemas.errors.KernelError`.

A bad policy is a :class:`~schemas.errors.ValidationError` (``field`` names the
offending policy field), so the API and CLI map it to a 4xx/exit 2 like any
other bad input. An illegal lifecycle move is its own family: the input is
well-formed but the registry's current state forbids it.
"""

from __future__ import annotations

from schemas.errors import KernelError, ValidationError

__all__ = ["PolicyValidationError", "RuleError", "SentinelError", "TransitionError"]


class SentinelError(KernelError):
    """Base of SentinelNet's own errors that are not input validation."""


class PolicyValidationError(ValidationError):
    """A policy definition is invalid; ``field`` names the policy field (``scope.eventTypes``)."""


class RuleError(PolicyValidationError):
    """A rule does not compile, or reads an attribute the kernel action does not have."""

    def __init__(self, message: str, *, field: str = "rule") -> None:
        super().__init__(message, field=field)


class TransitionError(SentinelError):
    """A policy change is illegal against the registry's current state."""
