"""The root of every error Kernel raises on purpose.

Adapters translate library errors at their boundary (``raise SchemaError(...)
from exc``) so callers catch one family. Messages say what was wrong and what
to do about it: they are read by operators, not by the code.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "KernelError",
    "LogUnavailableError",
    "SchemaError",
    "StoreUnavailableError",
    "ValidationError",
]


class KernelError(Exception):
    """Base class of all Kernel errors."""


class ConfigError(KernelError):
    """The configuration (environment, files) is missing or inconsistent."""


class SchemaError(KernelError):
    """A record does not match, or cannot be resolved against, a known schema."""


class ValidationError(KernelError):
    """An input event is invalid; ``field`` names the offending field when known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message


class LogUnavailableError(KernelError):
    """Kafka did not acknowledge a write or answer a request in the bounded wait."""


class StoreUnavailableError(KernelError):
    """Postgres did not answer or rejected the connection."""
