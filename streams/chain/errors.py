"""Errors of the signed audit chain, rooted in :class:`~schemas.errors.KernelError`."""

from __future__ import annotations

from schemas.errors import KernelError
from streams.processor import BackendUnavailableError

__all__ = [
    "CanonicalizationError",
    "ChainError",
    "KeyFileError",
    "SignerError",
    "SignerUnavailableError",
]


class ChainError(KernelError):
    """Base of the audit chain's errors."""


class CanonicalizationError(ChainError):
    """A value has no RFC 8785 form (not I-JSON: big integer, NaN, lone surrogate, ...)."""


class KeyFileError(ChainError):
    """A signing key file is missing, unreadable, malformed or too widely readable."""


class SignerError(ChainError):
    """A signer could not sign (a KMS/HSM backend failed, a key does not match its id)."""


class SignerUnavailableError(SignerError, BackendUnavailableError):
    """The HSM/KMS did not sign now (unreachable, session lost): retry the batch, never skip it."""
