"""Errors of the local stack."""

from schemas.errors import KernelError

__all__ = ["MissingToolError", "StackError"]


class StackError(KernelError):
    """A local service could not be started, reached or stopped."""


class MissingToolError(StackError):
    """A binary the stack needs (java, mvn, initdb) is not installed."""
