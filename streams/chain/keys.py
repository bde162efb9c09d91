"""Development signing keys on disk, and the ``signers.json`` trust list.

A key file (``<keys_dir>/<signerId>.ed25519.json``, mode 0600, directory
0700, outside the repository) holds::

    {"version": 1, "algorithm": "ed25519", "signerId": "kernel-signer",
     "seed": "<base64 32-byte seed>", "publicKey": "<base64 32-byte key>"}

Loading refuses a file that group or others can read (as ssh does), and a
file whose public key does not match its seed. ``signers.json`` is the
runbook's format, ``{"signers": [{"signerId": ..., "publicKey": ...}]}``,
listing every key ever used so that old records stay verifiable; an entry may
carry the key's validity window and revocation (:mod:`streams.chain.windows`).
Production keys live in a KMS/HSM behind the same :class:`Signer` port.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from streams.chain.errors import KeyFileError, SignerError
from streams.chain.signing import LocalEd25519Signer, Verifier, b64, unb64
from streams.chain.windows import KeyWindow, parse_window

__all__ = [
    "generate_key",
    "key_files",
    "key_path",
    "load_signer",
    "load_signers_file",
    "parse_signers",
    "signers_document",
]

_SIGNER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SUFFIX = ".ed25519.json"


def key_path(keys_dir: Path, signer_id: str) -> Path:
    if not _SIGNER_ID.match(signer_id):
        raise KeyFileError(
            f"signerId {signer_id!r} must be 1-128 of letters, digits, '.', '_', '-'"
        )
    return keys_dir / f"{signer_id}{_SUFFIX}"


def generate_key(keys_dir: Path, signer_id: str, *, seed: bytes | None = None) -> Path:
    """Write a new key file; never overwrites an existing one."""
    path = key_path(keys_dir, signer_id)
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(keys_dir, 0o700)
    key = SigningKey(seed) if seed is not None else SigningKey.generate()
    doc = {
        "version": 1,
        "algorithm": "ed25519",
        "signerId": signer_id,
        "seed": b64(bytes(key)),
        "publicKey": b64(bytes(key.verify_key)),
    }
    try:
        # O_EXCL: two concurrent generates cannot both win; mode set at creation,
        # so the seed is never readable by others, not even for an instant.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(f"{path} exists; keys are never overwritten") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(doc, out, indent=2)
        out.write("\n")
    return path


def load_signer(path: Path) -> LocalEd25519Signer:
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(
                f"{path} is accessible by group or others (mode {stat.S_IMODE(mode):o}); "
                f"run: chmod 600 {path}"
            )
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise KeyFileError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("algorithm") != "ed25519":
        raise KeyFileError(f"{path} is not an ed25519 key file")
    try:
        signer = LocalEd25519Signer(unb64(str(doc["seed"])), str(doc["signerId"]))
        public = unb64(str(doc["publicKey"]))
    except (KeyError, ValueError, SignerError) as exc:
        raise KeyFileError(f"{path} is malformed: {exc}") from exc
    if signer.public_key != public:
        raise KeyFileError(f"{path}: publicKey does not match the seed")
    return signer


def key_files(keys_dir: Path) -> list[Path]:
    if not keys_dir.is_dir():
        return []
    return sorted(p for p in keys_dir.iterdir() if p.name.endswith(_SUFFIX))


def signers_document(
    signers: list[tuple[str, bytes]], windows: Mapping[str, KeyWindow] | None = None
) -> dict[str, Any]:
    """The runbook's document; a key with a window in ``windows`` carries it."""
    out = []
    for sid, pk in signers:
        entry: dict[str, Any] = {"signerId": sid, "publicKey": b64(pk)}
        window = (windows or {}).get(sid)
        if window is not None:
            entry.update(window.to_json())
        out.append(entry)
    return {"signers": out}


def parse_signers(doc: Any) -> dict[str, Verifier]:
    """signerId -> verifier from a ``signers.json`` document, strictly."""
    if not isinstance(doc, dict) or not isinstance(doc.get("signers"), list):
        raise KeyFileError('signers.json must be {"signers": [{"signerId": .., "publicKey": ..}]}')
    out: dict[str, Verifier] = {}
    for i, entry in enumerate(doc["signers"]):
        if not isinstance(entry, dict):
            raise KeyFileError(f"signers[{i}] is not an object")
        sid, pk = entry.get("signerId"), entry.get("publicKey")
        if not isinstance(sid, str) or not sid or not isinstance(pk, str):
            raise KeyFileError(f"signers[{i}] needs a signerId and a base64 publicKey")
        window = parse_window(entry, f"signers[{i}] ({sid})")
        try:
            verifier = Verifier(unb64(pk), window)
        except (ValueError, SignerError) as exc:
            raise KeyFileError(f"signers[{i}] ({sid}): bad publicKey: {exc}") from exc
        if sid in out and out[sid].public_key != verifier.public_key:
            raise KeyFileError(f"signerId {sid!r} is listed twice with different keys")
        out[sid] = verifier
    return out


def load_signers_file(path: Path) -> dict[str, Verifier]:
    try:
        return parse_signers(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise KeyFileError(f"cannot read signers file {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise KeyFileError(f"{path} is not JSON: {exc}") from exc
