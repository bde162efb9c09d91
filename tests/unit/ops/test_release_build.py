"""Which key ``kernel release`` signs with, and what it reads of the Dockerfile (issue 11.7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.config import Settings
from ops.release import ReleaseError, build_release, dockerfile_sources, release_signer
from schemas.errors import ConfigError
from streams.chain.keys import generate_key

ROOT = Path(__file__).resolve().parents[3]


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"KERNEL_STATE_DIR": str(tmp_path), **env})


def test_the_release_key_is_kernel_release_key(tmp_path: Path) -> None:
    key = generate_key(tmp_path / "elsewhere", "my-release")
    assert release_signer(settings(tmp_path, KERNEL_RELEASE_KEY=str(key))).signer_id == "my-release"


def test_without_kernel_release_key_it_is_the_release_signer_ids_key_file(tmp_path: Path) -> None:
    generate_key(tmp_path / "keys", "kernel-signer")  # the chain's key is never the release's
    with pytest.raises(ConfigError) as caught:
        release_signer(settings(tmp_path))
    assert "no release key at" in str(caught.value)
    assert "kernel keys generate --signer-id kernel-release" in str(caught.value)
    generate_key(tmp_path / "keys", "kernel-release")
    assert release_signer(settings(tmp_path)).signer_id == "kernel-release"


def test_production_refuses_a_release_key_file(tmp_path: Path) -> None:
    key = generate_key(tmp_path / "keys", "kernel-release")
    with pytest.raises(ConfigError) as caught:
        release_signer(settings(tmp_path, KERNEL_ENV="production", KERNEL_RELEASE_KEY=str(key)))
    assert str(caught.value).startswith("KERNEL_ENV=production refuses a release key file")
    assert "KERNEL_SIGNER_BACKEND=pkcs11" in str(caught.value)


def test_the_pkcs11_backend_needs_its_module_for_the_release_key_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="KERNEL_PKCS11_MODULE"):
        release_signer(settings(tmp_path, KERNEL_SIGNER_BACKEND="pkcs11"))


def test_the_repositorys_dockerfile_names_the_package_and_its_metadata() -> None:
    assert dockerfile_sources(ROOT) == [
        "README.md", "ops", "projections", "pyproject.toml", "replay", "schemas", "streams",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ('COPY ["ops", "ops"]', "without the JSON form"),
        ("COPY ops \\", "on one line"),
        ("COPY *.toml ./", "not a plain context path"),
        ("COPY ../secrets ./", "not a plain context path"),
        ("COPY missing ./", "not in the commit"),
    ],
)
def test_a_dockerfile_line_that_cannot_be_read_for_certain_is_an_error(
    tmp_path: Path, line: str, why: str
) -> None:
    (tmp_path / "ops").mkdir()
    (tmp_path / "Dockerfile").write_text(f"FROM python:3.11-slim\n{line}\n")
    with pytest.raises(ReleaseError, match=why):
        dockerfile_sources(tmp_path)


def test_copy_from_another_stage_and_flags_are_not_context(tmp_path: Path) -> None:
    (tmp_path / "ops").mkdir()
    (tmp_path / "Dockerfile").write_text(
        "FROM python AS b\nCOPY --chown=1:1 ops /app/ops\nFROM python\n"
        "COPY --from=b /app /app\nADD ops /x\n"
    )
    assert dockerfile_sources(tmp_path) == ["ops"]


def test_a_release_never_goes_into_a_directory_that_holds_something(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    out.mkdir()
    (out / "kernel-0.0.9.tar.gz").write_bytes(b"old")
    key = generate_key(tmp_path / "keys", "kernel-release")
    signer = release_signer(settings(tmp_path, KERNEL_RELEASE_KEY=str(key)))
    with pytest.raises(ReleaseError, match="not empty"):
        build_release(ROOT, out, signer)


def test_an_unknown_commit_is_an_error(tmp_path: Path) -> None:
    key = generate_key(tmp_path / "keys", "kernel-release")
    signer = release_signer(settings(tmp_path, KERNEL_RELEASE_KEY=str(key)))
    with pytest.raises(ReleaseError, match="rev-parse"):
        build_release(ROOT, tmp_path / "out", signer, commit="no-such-tag-anywhere")
