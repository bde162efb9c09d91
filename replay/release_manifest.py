"""The signed release manifest: its format, and the check of ``kernel verify-release``.

A release directory holds the artifacts and one manifest, ``release-manifest.json``::

    {"manifest": {"format": "kernel-release-manifest/1",
                  "project": "kernel", "version": "0.1.0",
                  "commit": "<40 hex>", "sourceDateEpoch": 1796173477,
                  "builder": {"python": "3.11.7", "build": "1.2.2", "setuptools": "80.9.0"},
                  "artifacts": [{"name": "kernel-0.1.0-py3-none-any.whl", "kind": "wheel",
                                 "size": 384575, "sha256": "<64 hex>"}, ...],
                  "signerId": "kernel-release", "publicKey": "<base64 raw Ed25519>"},
     "signature": "<base64 Ed25519 signature of JCS(manifest)>"}

The signature is Ed25519 over the RFC 8785 bytes of the ``manifest`` member, made
by the same :class:`~streams.chain.signing.Signer` port as the audit chain (a key
file, or a PKCS#11 token). Those bytes start with ``{``; the chain signs 32-byte
digests and checkpoints sign notes that start with their origin, so one key can
never be tricked into making a signature that is valid in another of the three
(still: give releases their own key, ``kernel-release``).

The file is exactly the JCS of the whole document plus a newline, and
:func:`verify_release` refuses any other spelling. That also refuses duplicate
keys, which two JSON readers resolve differently. The public key inside the
manifest is only a claim: the manifest verifies only when its signerId is in the
trusted ``signers.json`` *with that key*. Every artifact must be there with its
size and digest, and no other file may be in the directory: a wheel dropped in
next to the signed ones would otherwise be installed as if it were signed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.errors import KernelError
from streams.chain.canonical import canonicalize
from streams.chain.errors import SignerError
from streams.chain.signing import Signer, Verifier, b64, unb64

__all__ = [
    "FORMAT",
    "MANIFEST_NAME",
    "Artifact",
    "ReleaseReport",
    "encode_manifest",
    "file_artifact",
    "sign_manifest",
    "verify_release",
]

FORMAT = "kernel-release-manifest/1"
MANIFEST_NAME = "release-manifest.json"
KINDS = ("sdist", "wheel", "image-context")
_BODY_KEYS = frozenset(
    {"format", "project", "version", "commit", "sourceDateEpoch", "builder", "artifacts"}
    | {"signerId", "publicKey"}
)
_ARTIFACT_KEYS = frozenset({"name", "kind", "size", "sha256"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")  # a plain file name, no path
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Artifact:
    name: str
    kind: str
    size: int
    sha256: str

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "size": self.size, "sha256": self.sha256}


def file_artifact(path: Path, kind: str) -> Artifact:
    """Name, size and SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return Artifact(path.name, kind, size, digest.hexdigest())


def sign_manifest(body: Mapping[str, Any], signer: Signer) -> dict[str, Any]:
    """The signed document; ``body`` must name this signer (signerId, publicKey)."""
    if body.get("signerId") != signer.signer_id or body.get("publicKey") != b64(signer.public_key):
        raise SignerError("the manifest must name the signer that signs it (signerId, publicKey)")
    return {"manifest": dict(body), "signature": b64(signer.sign(canonicalize(dict(body))))}


def encode_manifest(document: Mapping[str, Any]) -> bytes:
    """The file's bytes: JCS of the document and a newline (the only accepted spelling)."""
    return canonicalize(dict(document)) + b"\n"


@dataclass
class ReleaseReport:
    """What :func:`verify_release` found: ``ok`` only when ``problems`` is empty."""

    manifest: Path
    checked: list[str] = field(default_factory=list)  # one line per artifact that verified
    problems: list[str] = field(default_factory=list)
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.checked)


def verify_release(
    manifest: Path, trusted: Mapping[str, Verifier], directory: Path | None = None
) -> ReleaseReport:
    """Check the manifest's form, its signer and signature, then every artifact in
    ``directory`` (default: the manifest's), and that nothing else is there."""
    report = ReleaseReport(manifest)
    try:
        raw = manifest.read_bytes()
    except OSError as exc:
        report.problems.append(f"cannot read {manifest}: {exc.strerror}")
        return report
    try:
        body, signature = _parse(raw)
        _check_signature(body, signature, trusted)
    except _ManifestError as exc:
        report.problems.append(str(exc))
        return report
    report.body = body
    where = directory if directory is not None else manifest.parent
    artifacts = [Artifact(**a) for a in body["artifacts"]]
    for artifact in artifacts:
        _check_artifact(where / artifact.name, artifact, report)
    listed = {a.name for a in artifacts} | {manifest.name}
    try:
        present = sorted(p.name for p in where.iterdir())
    except OSError as exc:
        report.problems.append(f"cannot list {where}: {exc.strerror}")
        return report
    report.problems.extend(
        f"{name}: in {where} but not in the manifest (unsigned; remove it)"
        for name in present
        if name not in listed
    )
    return report


class _ManifestError(KernelError):
    """The manifest itself is not acceptable (form, signer or signature)."""


def _parse(raw: bytes) -> tuple[dict[str, Any], bytes]:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _ManifestError(f"the manifest is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or set(doc) != {"manifest", "signature"}:
        raise _ManifestError('the manifest must be {"manifest": {...}, "signature": "..."}')
    try:
        canonical = encode_manifest(doc)
    except KernelError as exc:
        raise _ManifestError(f"the manifest has no canonical form: {exc}") from exc
    if raw != canonical:
        raise _ManifestError(
            "the manifest is not in its canonical form (RFC 8785 JSON and a newline): "
            "edited, reformatted or with duplicate keys"
        )
    body, signature = doc["manifest"], doc["signature"]
    if not isinstance(body, dict) or set(body) != _BODY_KEYS:
        raise _ManifestError(f"the manifest body must have exactly {sorted(_BODY_KEYS)}")
    if body["format"] != FORMAT:
        raise _ManifestError(
            f"unknown manifest format {body['format']!r}; this tool reads {FORMAT}"
        )
    if not isinstance(body["commit"], str) or not _HEX40.match(body["commit"]):
        raise _ManifestError("commit must be a full 40-hex git commit id")
    for key in ("project", "version", "signerId", "publicKey"):
        if not isinstance(body[key], str) or not body[key]:
            raise _ManifestError(f"{key} must be a non-empty string")
    if type(body["sourceDateEpoch"]) is not int or body["sourceDateEpoch"] < 0:
        raise _ManifestError("sourceDateEpoch must be a non-negative integer")
    builder = body["builder"]
    if not isinstance(builder, dict) or not all(isinstance(v, str) for v in builder.values()):
        raise _ManifestError("builder must map tool names to version strings")
    if not isinstance(signature, str):
        raise _ManifestError("signature must be a base64 string")
    try:
        sig = unb64(signature)
    except ValueError as exc:
        raise _ManifestError(f"signature is not base64: {exc}") from exc
    _check_artifact_list(body["artifacts"])
    return body, sig


def _check_artifact_list(artifacts: Any) -> None:
    if not isinstance(artifacts, list) or not artifacts:
        raise _ManifestError("artifacts must be a non-empty list")
    names: set[str] = set()
    for i, a in enumerate(artifacts):
        if not isinstance(a, dict) or set(a) != _ARTIFACT_KEYS:
            raise _ManifestError(f"artifacts[{i}] must have exactly {sorted(_ARTIFACT_KEYS)}")
        name = a["name"]
        if not isinstance(name, str) or not _NAME.match(name) or name == MANIFEST_NAME:
            raise _ManifestError(f"artifacts[{i}].name {name!r} is not a plain file name")
        if name in names:
            raise _ManifestError(f"artifacts[{i}]: {name} is listed twice")
        names.add(name)
        if a["kind"] not in KINDS:
            raise _ManifestError(f"artifacts[{i}].kind must be one of {', '.join(KINDS)}")
        if type(a["size"]) is not int or a["size"] < 0:
            raise _ManifestError(f"artifacts[{i}].size must be a non-negative integer")
        if not isinstance(a["sha256"], str) or not _HEX64.match(a["sha256"]):
            raise _ManifestError(f"artifacts[{i}].sha256 must be 64 lowercase hex digits")


def _check_signature(
    body: dict[str, Any], signature: bytes, trusted: Mapping[str, Verifier]
) -> None:
    signer_id, claimed = body["signerId"], body["publicKey"]
    verifier = trusted.get(signer_id)
    if verifier is None:
        raise _ManifestError(
            f"signerId {signer_id!r} is not a trusted release signer "
            f"(trusted: {', '.join(sorted(trusted)) or 'none'})"
        )
    if claimed != b64(verifier.public_key):
        raise _ManifestError(
            f"the manifest names signerId {signer_id!r} with a public key that is not "
            f"the trusted one"
        )
    if not verifier.verify(canonicalize(body), signature):
        raise _ManifestError(
            f"the signature does not verify under {signer_id!r}: the manifest was altered "
            f"after signing, or signed by another key"
        )


def _check_artifact(path: Path, expected: Artifact, report: ReleaseReport) -> None:
    if not path.is_file():
        report.problems.append(f"{expected.name}: missing (the manifest lists it)")
        return
    try:
        actual = file_artifact(path, expected.kind)
    except OSError as exc:
        report.problems.append(f"{expected.name}: cannot read: {exc.strerror}")
        return
    if actual.size != expected.size:
        report.problems.append(
            f"{expected.name}: size {actual.size}, the manifest says {expected.size}"
        )
    elif actual.sha256 != expected.sha256:
        report.problems.append(
            f"{expected.name}: sha256 {actual.sha256}, the manifest says {expected.sha256}"
        )
    else:
        report.checked.append(f"{expected.name} {expected.size} bytes sha256 {expected.sha256}")
