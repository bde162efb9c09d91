"""Errors of the approvals workflow, rooted in :class:`schemas.errors.KernelError`."""

from __future__ import annotations

from schemas.errors import KernelError

__all__ = ["ApprovalError", "RegistryError"]


class ApprovalError(KernelError):
    """An approval, request or quorum is malformed or does not hold."""


class RegistryError(ApprovalError):
    """The approvers registry (genesis file, a change to it) is malformed or illegal."""
