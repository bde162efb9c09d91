"""Who signs a chain link: the :class:`Signer` port and its local Ed25519 adapter.

A signer signs the raw 32-byte SHA-256 digest of a link (not its hex, not the
payload), so any Ed25519 implementation -- PyNaCl here, a KMS or a PKCS#11 HSM
later -- produces the same 64 bytes: Ed25519 is deterministic. The chain only
ever calls :meth:`Signer.sign`; a remote backend implements the same three
members and plugs into :class:`~streams.chain.links.ChainStep` unchanged.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from streams.chain.errors import SignerError

if TYPE_CHECKING:
    from streams.chain.windows import KeyWindow

__all__ = ["LocalEd25519Signer", "Signer", "Verifier", "b64", "unb64"]


@runtime_checkable
class Signer(Protocol):
    """Signs 32-byte digests with Ed25519 under a stable ``signer_id``."""

    @property
    def signer_id(self) -> str: ...

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key (what ``signers.json`` lists)."""
        ...

    def sign(self, digest: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``digest``; raises SignerError on failure."""
        ...


class LocalEd25519Signer:
    """An Ed25519 key held in this process (development only: see ``KERNEL_ENV``)."""

    __slots__ = ("_key", "_public", "_signer_id")

    def __init__(self, seed: bytes, signer_id: str) -> None:
        if len(seed) != 32:
            raise SignerError(f"an Ed25519 seed is 32 bytes, got {len(seed)}")
        if not signer_id:
            raise SignerError("a signer needs a non-empty signerId")
        self._key = SigningKey(seed)
        self._public = bytes(self._key.verify_key)
        self._signer_id = signer_id

    @property
    def signer_id(self) -> str:
        return self._signer_id

    @property
    def public_key(self) -> bytes:
        return self._public

    def sign(self, digest: bytes) -> bytes:
        return bytes(self._key.sign(digest).signature)

    def __repr__(self) -> str:  # never print the seed
        return f"LocalEd25519Signer(signer_id={self._signer_id!r})"


class Verifier:
    """Checks Ed25519 signatures by one public key; built once, used per record.

    ``window``: the positions the key may sign (``signers.json``'s validity and
    revocation, :mod:`streams.chain.windows`); None: everywhere.
    """

    __slots__ = ("_key", "public_key", "window")

    def __init__(self, public_key: bytes, window: KeyWindow | None = None) -> None:
        if len(public_key) != 32:
            raise SignerError(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
        self.public_key = public_key
        self.window = window
        self._key = VerifyKey(public_key)

    def verify(self, digest: bytes, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        try:
            self._key.verify(digest, signature)
        except BadSignatureError:
            return False
        return True


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    """Strict standard base64 (padding required, no other characters)."""
    return base64.b64decode(text.encode("ascii"), validate=True)
