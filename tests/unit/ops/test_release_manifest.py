"""The release manifest's check refuses every way a release can be wrong (issue 11.7).

Synthetic artifacts, no build: the real build is tests/e2e/test_release.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replay.release_manifest import (
    FORMAT,
    MANIFEST_NAME,
    encode_manifest,
    file_artifact,
    sign_manifest,
    verify_release,
)
from streams.chain.canonical import canonicalize
from streams.chain.errors import SignerError
from streams.chain.signing import LocalEd25519Signer, Verifier, b64

SIGNER = LocalEd25519Signer(bytes(range(32)), "kernel-release")
TRUSTED = {"kernel-release": Verifier(SIGNER.public_key)}
FILES = {
    "kernel-0.1.0-py3-none-any.whl": ("wheel", b"PK\x03\x04 a wheel " * 50),
    "kernel-0.1.0.tar.gz": ("sdist", b"\x1f\x8b an sdist " * 40),
    "kernel-0.1.0-image-context.tar.gz": ("image-context", b"\x1f\x8b a context " * 30),
}
WHEEL = "kernel-0.1.0-py3-none-any.whl"


def body_for(directory: Path, signer: LocalEd25519Signer = SIGNER) -> dict[str, Any]:
    artifacts = [file_artifact(directory / n, kind) for n, (kind, _) in sorted(FILES.items())]
    return {
        "format": FORMAT,
        "project": "kernel",
        "version": "0.1.0",
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "sourceDateEpoch": 1_796_173_477,
        "builder": {"python": "3.11.7", "build": "1.2.2", "setuptools": "80.9.0"},
        "artifacts": [a.as_json() for a in artifacts],
        "signerId": signer.signer_id,
        "publicKey": b64(signer.public_key),
    }


def make_release(directory: Path, signer: LocalEd25519Signer = SIGNER) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, (_, data) in FILES.items():
        (directory / name).write_bytes(data)
    manifest = directory / MANIFEST_NAME
    manifest.write_bytes(encode_manifest(sign_manifest(body_for(directory, signer), signer)))
    return manifest


def problems(manifest: Path, trusted: dict[str, Verifier] = TRUSTED) -> list[str]:
    report = verify_release(manifest, trusted)
    assert report.ok is (not report.problems)
    return report.problems


def rewrite(manifest: Path, edit: Any) -> None:
    doc = json.loads(manifest.read_bytes())
    edit(doc)
    manifest.write_bytes(encode_manifest(doc))


def test_a_release_as_signed_verifies(tmp_path: Path) -> None:
    manifest = make_release(tmp_path)
    report = verify_release(manifest, TRUSTED)
    assert report.ok, report.problems
    assert sorted(line.split()[0] for line in report.checked) == sorted(FILES)
    assert manifest.read_bytes() == canonicalize(json.loads(manifest.read_bytes())) + b"\n"


def test_a_tampered_artifact_of_the_same_size_fails_on_its_digest(tmp_path: Path) -> None:
    manifest = make_release(tmp_path)
    data = bytearray((tmp_path / WHEEL).read_bytes())
    data[100] ^= 0x01
    (tmp_path / WHEEL).write_bytes(bytes(data))
    [problem] = problems(manifest)
    assert problem.startswith(f"{WHEEL}: sha256 ")


def test_a_grown_artifact_fails_on_its_size(tmp_path: Path) -> None:
    manifest = make_release(tmp_path)
    with (tmp_path / WHEEL).open("ab") as f:
        f.write(b"payload")
    [problem] = problems(manifest)
    assert problem.startswith(f"{WHEEL}: size ")


def test_a_missing_artifact_fails(tmp_path: Path) -> None:
    manifest = make_release(tmp_path)
    (tmp_path / "kernel-0.1.0.tar.gz").unlink()
    assert problems(manifest) == ["kernel-0.1.0.tar.gz: missing (the manifest lists it)"]


def test_an_unsigned_file_next_to_the_signed_ones_fails(tmp_path: Path) -> None:
    manifest = make_release(tmp_path)
    (tmp_path / "kernel-0.1.1-py3-none-any.whl").write_bytes(b"PK not signed")
    [problem] = problems(manifest)
    assert "kernel-0.1.1-py3-none-any.whl" in problem
    assert "not in the manifest" in problem


def test_artifacts_may_be_checked_in_another_directory(tmp_path: Path) -> None:
    manifest = make_release(tmp_path / "signed")
    elsewhere = tmp_path / "mirror"
    elsewhere.mkdir()
    for name in FILES:
        (elsewhere / name).write_bytes((tmp_path / "signed" / name).read_bytes())
    assert verify_release(manifest, TRUSTED, elsewhere).ok


def test_a_manifest_edited_to_match_a_tampered_wheel_fails_on_its_signature(
    tmp_path: Path,
) -> None:
    manifest = make_release(tmp_path)
    (tmp_path / WHEEL).write_bytes(b"PK evil wheel")
    evil = file_artifact(tmp_path / WHEEL, "wheel").as_json()

    def swap(doc: dict[str, Any]) -> None:
        doc["manifest"]["artifacts"] = [
            evil if a["name"] == WHEEL else a for a in doc["manifest"]["artifacts"]
        ]

    rewrite(manifest, swap)
    [problem] = problems(manifest)
    assert "signature does not verify" in problem


def test_a_signer_that_is_not_trusted_is_refused(tmp_path: Path) -> None:
    mallory = LocalEd25519Signer(b"\x07" * 32, "mallory")
    [problem] = problems(make_release(tmp_path, mallory))
    assert "'mallory' is not a trusted release signer" in problem
    assert "kernel-release" in problem


def test_another_key_under_the_trusted_signer_id_is_refused(tmp_path: Path) -> None:
    impostor = LocalEd25519Signer(b"\x07" * 32, "kernel-release")
    [problem] = problems(make_release(tmp_path, impostor))
    assert "not the trusted one" in problem


def test_an_impostor_claiming_the_trusted_public_key_fails_on_the_signature(
    tmp_path: Path,
) -> None:
    impostor = LocalEd25519Signer(b"\x07" * 32, "kernel-release")
    manifest = make_release(tmp_path, impostor)
    rewrite(manifest, lambda doc: doc["manifest"].update(publicKey=b64(SIGNER.public_key)))
    [problem] = problems(manifest)
    assert "signature does not verify" in problem


def test_a_reformatted_manifest_is_refused(tmp_path: Path) -> None:
    manifest = make_release(tmp_path)
    manifest.write_text(json.dumps(json.loads(manifest.read_bytes()), indent=2) + "\n")
    [problem] = problems(manifest)
    assert "canonical form" in problem


def test_a_duplicate_key_is_refused(tmp_path: Path) -> None:
    # Two readers would disagree on which sha256 is meant; the canonical form has one.
    manifest = make_release(tmp_path)
    raw = manifest.read_bytes()
    manifest.write_bytes(raw.replace(b'"sha256":', b'"sha256":"' + b"0" * 64 + b'","sha256":', 1))
    [problem] = problems(manifest)
    assert "canonical form" in problem


@pytest.mark.parametrize(
    ("name", "why"),
    [("../etc/passwd", "not a plain file name"), (MANIFEST_NAME, "not a plain file name")],
)
def test_an_artifact_name_that_is_a_path_is_refused(tmp_path: Path, name: str, why: str) -> None:
    manifest = make_release(tmp_path)
    rewrite(manifest, lambda doc: doc["manifest"]["artifacts"][0].update(name=name))
    [problem] = problems(manifest)
    assert why in problem


def test_an_unknown_format_is_refused(tmp_path: Path) -> None:
    manifest = make_release(tmp_path)
    rewrite(manifest, lambda doc: doc["manifest"].update(format="kernel-release-manifest/2"))
    [problem] = problems(manifest)
    assert "unknown manifest format" in problem


def test_not_json_is_refused(tmp_path: Path) -> None:
    manifest = tmp_path / MANIFEST_NAME
    manifest.write_bytes(b"\xff not json")
    [problem] = problems(manifest)
    assert "not JSON" in problem


def test_the_signer_must_be_the_one_the_manifest_names(tmp_path: Path) -> None:
    make_release(tmp_path)
    other = LocalEd25519Signer(b"\x07" * 32, "kernel-release")
    with pytest.raises(SignerError, match="must name the signer"):
        sign_manifest(body_for(tmp_path), other)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(position=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_any_flipped_bit_of_the_manifest_fails_verification(
    tmp_path: Path, position: int, bit: int
) -> None:
    manifest = make_release(tmp_path / "r")
    raw = bytearray(manifest.read_bytes())
    raw[position % len(raw)] ^= 1 << bit
    manifest.write_bytes(bytes(raw))
    assert not verify_release(manifest, TRUSTED).ok
