"""C2SP signed notes (c2sp.org/signed-note) carrying tlog checkpoints.

A chain checkpoint is a ``tlog-checkpoint`` body plus one extension line::

    kernel.audit/<topic>/<partition>      origin: names the chain
    <tree size, decimal>
    <base64 RFC 6962 root>
    head <hex hash of record size-1>      extension (absent when size is 0)

followed by a blank line and one line per signature::

    — <signerId> <base64( key hash (4 bytes) || Ed25519 signature (64) )>

The key hash is ``SHA-256(name || "\\n" || 0x01 || public key)[:4]`` (0x01:
the Ed25519 signature type), the signed message is the body including its
final newline. Parsing is strict: anything that is not exactly this grammar --
text before the origin, after the last signature, a missing final newline,
CR, a malformed signature line -- is rejected, because a lenient parser is
where two readers start disagreeing about what was signed. Per the spec,
signatures by unknown keys are ignored, but every signature by a known key
must verify and at least one must be present.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from schemas.errors import KernelError
from streams.chain.signing import Signer, Verifier

__all__ = [
    "ORIGIN_PREFIX",
    "ChainCheckpoint",
    "NoteError",
    "key_hash",
    "open_note",
    "sign_note",
]

ORIGIN_PREFIX = "kernel.audit/"
_SIG_PREFIX = "\u2014 "  # em dash, space
_ED25519 = b"\x01"
_MAX_SIGNATURES = 100
_NAME = re.compile(r"^[^\s+]+$")
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,18})$")
_HEX32 = re.compile(r"^[0-9a-f]{64}$")


class NoteError(KernelError):
    """A signed note or checkpoint is malformed or its signatures do not verify."""


def key_hash(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + public_key).digest()[:4]


def sign_note(body: str, signer: Signer) -> str:
    _check_body(body)
    name = signer.signer_id
    if not _NAME.match(name):
        raise NoteError(f"signer name {name!r} must be non-empty, without spaces or '+'")
    sig = signer.sign(body.encode())
    blob = base64.b64encode(key_hash(name, signer.public_key) + sig).decode()
    return f"{body}\n{_SIG_PREFIX}{name} {blob}\n"


def open_note(text: str, verifiers: Mapping[str, Verifier]) -> tuple[str, list[str]]:
    """(body, names that signed it) if at least one known key signed it; else NoteError."""
    if "\r" in text:
        raise NoteError("note contains a carriage return")
    split = text.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line between text and signatures")
    body, sig_block = text[: split + 1], text[split + 2 :]
    _check_body(body)
    if not sig_block.endswith("\n"):
        raise NoteError("note does not end with a newline")
    lines = sig_block[:-1].split("\n")
    if len(lines) > _MAX_SIGNATURES:
        raise NoteError(f"note has more than {_MAX_SIGNATURES} signatures")
    message = body.encode()
    verified: list[str] = []
    for line in lines:
        name, hash4, sig = _parse_signature_line(line)
        verifier = verifiers.get(name)
        if verifier is None or key_hash(name, verifier.public_key) != hash4:
            continue  # someone else's key (a witness, a rotated-out key): ignored
        if not verifier.verify(message, sig):
            raise NoteError(f"signature by {name} does not verify")
        verified.append(name)
    if not verified:
        raise NoteError("note is not signed by any key in signers.json")
    return body, verified


def _check_body(body: str) -> None:
    if not body.endswith("\n") or body.startswith("\n") or "\n\n" in body:
        raise NoteError("note text must be non-empty lines, each ending in a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in body):
        raise NoteError("note text contains a control character")


def _parse_signature_line(line: str) -> tuple[str, bytes, bytes]:
    if not line.startswith(_SIG_PREFIX):
        raise NoteError(f"not a signature line: {line[:40]!r}")
    parts = line[len(_SIG_PREFIX) :].split(" ")
    if len(parts) != 2 or not _NAME.match(parts[0]):
        raise NoteError(f"malformed signature line: {line[:40]!r}")
    try:
        blob = base64.b64decode(parts[1].encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise NoteError("signature is not base64") from exc
    if len(blob) < 5:
        raise NoteError("signature is too short")
    return parts[0], blob[:4], blob[4:]


@dataclass(frozen=True, slots=True)
class ChainCheckpoint:
    """The signed state of one chain: its Merkle root at ``size`` and its head."""

    chain: str
    size: int
    root: bytes
    head_hash: str  # "" for the empty chain

    @property
    def origin(self) -> str:
        return ORIGIN_PREFIX + self.chain

    def body(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        if self.head_hash:
            lines.append(f"head {self.head_hash}")
        return "\n".join(lines) + "\n"

    def sign(self, signer: Signer) -> str:
        return sign_note(self.body(), signer)

    @classmethod
    def parse(cls, body: str) -> ChainCheckpoint:
        _check_body(body)
        lines = body[:-1].split("\n")
        if len(lines) not in (3, 4):
            raise NoteError(f"a chain checkpoint has 3 or 4 lines, this one {len(lines)}")
        origin, size_text, root_text = lines[:3]
        if not origin.startswith(ORIGIN_PREFIX) or origin == ORIGIN_PREFIX:
            raise NoteError(f"origin {origin[:60]!r} is not {ORIGIN_PREFIX}<chain>")
        if not _DECIMAL.match(size_text):
            raise NoteError(f"tree size {size_text[:30]!r} is not a decimal")
        try:
            root = base64.b64decode(root_text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise NoteError("root hash is not base64") from exc
        if len(root) != 32 or base64.b64encode(root).decode() != root_text:
            raise NoteError("root hash is not a canonical base64 32-byte hash")
        size = int(size_text)
        head = ""
        if len(lines) == 4:
            ext = lines[3]
            if not ext.startswith("head ") or not _HEX32.match(ext[5:]):
                raise NoteError(f"unknown extension line {ext[:40]!r}")
            head = ext[5:]
        if (size == 0) != (head == ""):
            raise NoteError("a checkpoint names its head exactly when its size is above 0")
        return cls(origin[len(ORIGIN_PREFIX) :], size, root, head)

    @classmethod
    def open(
        cls, text: str, verifiers: Mapping[str, Verifier]
    ) -> tuple[ChainCheckpoint, list[str]]:
        """Verify a signed checkpoint note; returns it and who signed it."""
        body, names = open_note(text, verifiers)
        return cls.parse(body), names
