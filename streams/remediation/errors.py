"""Remediation errors, rooted in :class:`schemas.errors.KernelError`."""

from __future__ import annotations

from schemas.errors import ConfigError, ValidationError

__all__ = ["ActionConfigError", "RemediationRequestError"]


class ActionConfigError(ConfigError):
    """KERNEL_REMEDIATION_ACTIONS is unreadable or names an invalid action."""


class RemediationRequestError(ValidationError):
    """An operator's request, approval or rejection cannot be accepted as given."""
