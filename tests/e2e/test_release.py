"""``kernel release`` and ``kernel verify-release`` on the real build (issue 11.7).

Two builds per session (about 3 s each here): one from this checkout signed by a
key file, one from a clone holding uncommitted and untracked files, signed in a
SoftHSM2 token. Same commit, so the two must list byte-identical artifacts: the
build is reproducible, and what is released is the commit, not the checkout.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ops.cli import main
from ops.release import dockerfile_sources
from replay.release_manifest import MANIFEST_NAME
from streams.chain.keys import generate_key, load_signer, signers_document
from streams.chain.pkcs11_signer import TokenConfig, generate_token_key
from tests.e2e.test_runbooks import commands
from tests.softhsm import SoftHsmToken

ROOT = Path(__file__).resolve().parents[2]
WheelEdit = Callable[[zipfile.ZipFile], None]


def kernel(*args: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=180,
        check=False,
    )


def base_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERNEL_")}
    env["KERNEL_STATE_DIR"] = str(tmp / "state")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@dataclass(frozen=True)
class Built:
    directory: Path
    manifest: dict[str, Any]
    signers: Path  # the trusted signers.json of its key
    stdout: str


@pytest.fixture(scope="module")
def file_release(tmp_path_factory: pytest.TempPathFactory) -> Built:
    tmp = tmp_path_factory.mktemp("release")
    key = generate_key(tmp / "keys", "kernel-release")
    signer = load_signer(key)
    signers = tmp / "release-signers.json"
    signers.write_text(json.dumps(signers_document([(signer.signer_id, signer.public_key)])))
    env = {**base_env(tmp), "KERNEL_RELEASE_KEY": str(key)}
    done = kernel("release", "--out", str(tmp / "dist"), env=env)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp / "dist" / MANIFEST_NAME).read_bytes())["manifest"]
    return Built(tmp / "dist", manifest, signers, done.stdout)


@pytest.fixture(scope="module")
def token_release(
    tmp_path_factory: pytest.TempPathFactory, softhsm: SoftHsmToken, file_release: Built
) -> Built:
    """Built from a clone at the same commit with local edits, signed inside the token."""
    tmp = tmp_path_factory.mktemp("token-release")
    commit = file_release.manifest["commit"]
    clone = tmp / "clone"
    subprocess.run(["git", "clone", "-q", "--shared", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", commit], check=True)
    (clone / "ops" / "untracked_backdoor.py").write_text("print('not released')\n")
    with (clone / "ops" / "cli.py").open("a") as f:
        f.write("\n# an uncommitted edit\n")
    sid = "kernel-release-hsm"
    config = TokenConfig(softhsm.module, softhsm.label, sid, softhsm.pin)
    public, _ = generate_token_key(config, if_missing=True)
    signers = tmp / "release-signers.json"
    signers.write_text(json.dumps(signers_document([(sid, public)])))
    env = {**base_env(tmp), **softhsm.env(KERNEL_RELEASE_SIGNER_ID=sid)}
    done = kernel("release", "--out", str(tmp / "dist"), "--repo", str(clone), env=env)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp / "dist" / MANIFEST_NAME).read_bytes())["manifest"]
    return Built(tmp / "dist", manifest, signers, done.stdout)


def verify(built: Built, directory: Path | None = None) -> subprocess.CompletedProcess[str]:
    manifest = (directory or built.directory) / MANIFEST_NAME
    return kernel(
        "verify-release", str(manifest), "--signers", str(built.signers),
        env=base_env(built.directory.parent),
    )  # fmt: skip


def copy_of(built: Built, tmp_path: Path) -> Path:
    return Path(shutil.copytree(built.directory, tmp_path / "copy"))


def test_release_builds_the_three_artifacts_and_verify_release_accepts_them(
    file_release: Built,
) -> None:
    kinds = {a["kind"]: a["name"] for a in file_release.manifest["artifacts"]}
    assert kinds == {
        "sdist": "kernel-0.1.0.tar.gz",
        "wheel": "kernel-0.1.0-py3-none-any.whl",
        "image-context": "kernel-0.1.0-image-context.tar.gz",
    }
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert file_release.manifest["commit"] == head
    assert set(file_release.manifest["builder"]) == {"python", "build", "setuptools"}
    assert '"signerId": "kernel-release"' in file_release.stdout
    done = verify(file_release)
    assert done.returncode == 0, done.stderr
    assert sum(line.startswith("ok    ") for line in done.stdout.splitlines()) == 3
    assert f"release verified: kernel 0.1.0 of commit {head}" in done.stdout


def _rewrite_wheel(wheel: Path, edit: WheelEdit) -> None:
    data = io.BytesIO()
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item.filename))
        edit(dst)
    wheel.write_bytes(data.getvalue())


def test_a_tampered_wheel_fails_verification(file_release: Built, tmp_path: Path) -> None:
    copy = copy_of(file_release, tmp_path)
    wheel = copy / "kernel-0.1.0-py3-none-any.whl"
    _rewrite_wheel(wheel, lambda z: z.writestr("ops/sitecustomize.py", "import os\n"))
    done = verify(file_release, copy)
    assert done.returncode == 1
    assert "FAIL  kernel-0.1.0-py3-none-any.whl: size" in done.stderr
    assert "release NOT verified" in done.stderr
    assert "ok    kernel-0.1.0.tar.gz" in done.stdout  # the others still verify, and say so


def test_a_manifest_trusted_by_another_key_fails(
    file_release: Built, token_release: Built, tmp_path: Path
) -> None:
    other = kernel(
        "verify-release", str(file_release.directory / MANIFEST_NAME),
        "--signers", str(token_release.signers), env=base_env(tmp_path),
    )  # fmt: skip
    assert other.returncode == 1
    assert "'kernel-release' is not a trusted release signer" in other.stderr


def test_two_builds_of_one_commit_are_identical_and_ignore_the_checkout(
    file_release: Built, token_release: Built
) -> None:
    assert token_release.manifest["commit"] == file_release.manifest["commit"]
    assert token_release.manifest["artifacts"] == file_release.manifest["artifacts"]
    assert "uncommitted changes; they are not in the release" in token_release.stdout
    wheel = token_release.directory / "kernel-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        assert "ops/untracked_backdoor.py" not in z.namelist()
        assert b"an uncommitted edit" not in z.read("ops/cli.py")


def test_a_release_signed_in_the_token_verifies(token_release: Built) -> None:
    assert token_release.manifest["signerId"] == "kernel-release-hsm"
    done = verify(token_release)
    assert done.returncode == 0, done.stderr


def test_the_wheel_and_sdist_hold_the_package_and_its_data(file_release: Built) -> None:
    with zipfile.ZipFile(file_release.directory / "kernel-0.1.0-py3-none-any.whl") as z:
        names = set(z.namelist())
        entry_points = z.read("kernel-0.1.0.dist-info/entry_points.txt").decode()
    assert {"ops/cli.py", "ops/release.py", "replay/release_manifest.py"} <= names
    assert any(n.startswith("schemas/avro/") and n.endswith(".avsc") for n in names)
    assert any(n.startswith("projections/migrations/") and n.endswith(".sql") for n in names)
    assert "kernel = ops.cli:main" in entry_points
    with tarfile.open(file_release.directory / "kernel-0.1.0.tar.gz") as t:
        assert "kernel-0.1.0/pyproject.toml" in t.getnames()


def test_the_image_context_is_what_the_dockerfile_copies_and_is_deterministic(
    file_release: Built,
) -> None:
    epoch = file_release.manifest["sourceDateEpoch"]
    sources = dockerfile_sources(ROOT)
    assert {"pyproject.toml", "README.md", "ops", "streams", "schemas"} <= set(sources)
    for name in ("kernel-0.1.0-image-context.tar.gz", "kernel-0.1.0.tar.gz"):
        raw = (file_release.directory / name).read_bytes()
        assert raw[4:8] == b"\0\0\0\0", f"{name}: gzip header carries a time"
        with tarfile.open(fileobj=io.BytesIO(raw)) as t:
            members = t.getmembers()
        assert [m.name for m in members] == sorted(m.name for m in members)
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {
            (epoch, 0, 0, "", "")
        }
        assert {m.mode for m in members} <= {0o644, 0o755}
    with tarfile.open(file_release.directory / "kernel-0.1.0-image-context.tar.gz") as t:
        tops = {n.split("/")[0] for n in t.getnames()}
    assert tops == {"Dockerfile", *sources}


def _doc_python_block() -> str:
    [block] = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "releasing.md").read_text(), re.S)
    return block


def test_the_commands_of_docs_releasing_run_as_written(tmp_path: Path) -> None:
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", "--shared", str(ROOT), str(checkout)], check=True)
    subprocess.run(["git", "-C", str(checkout), "checkout", "-q", head], check=True)
    shim = tmp_path / "bin" / "kernel"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ops.cli "$@"\n')
    shim.chmod(0o755)
    env = {**base_env(tmp_path), "HOME": str(tmp_path / "home")}
    env["PATH"] = f"{shim.parent}{os.pathsep}{env.get('PATH', '')}"
    found = commands(ROOT / "docs" / "releasing.md")
    assert [c.expected for c in found] == [0, 0, 0, 0, 0, 1]
    for c in found:
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", c.line],
            capture_output=True, text=True, env=env, cwd=checkout, timeout=180, check=False,
        )  # fmt: skip
        assert done.returncode == c.expected, f"{c.line}\n{done.stdout}\n{done.stderr}"
    assert (checkout / "dist" / "release" / MANIFEST_NAME).is_file()


def test_the_independent_check_of_docs_releasing_accepts_a_release_and_fails_a_tampered_one(
    file_release: Built, tmp_path: Path
) -> None:
    shutil.copytree(file_release.directory, tmp_path / "dist" / "release")
    shutil.copyfile(file_release.signers, tmp_path / "release-signers.json")
    script = [sys.executable, "-c", _doc_python_block()]
    ok = subprocess.run(script, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    with (tmp_path / "dist" / "release" / "kernel-0.1.0.tar.gz").open("ab") as f:
        f.write(b"x")
    bad = subprocess.run(script, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert "AssertionError" in bad.stderr


def test_verify_release_trusts_one_public_key_given_on_the_command_line(
    file_release: Built,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KERNEL_STATE_DIR", str(tmp_path))
    manifest = str(file_release.directory / MANIFEST_NAME)
    key = json.loads(file_release.signers.read_text())["signers"][0]["publicKey"]
    assert main(["verify-release", manifest, "--public-key", key]) == 0
    assert main(["verify-release", manifest, "--public-key", key, "--signer-id", "other"]) == 1
    assert "'kernel-release' is not a trusted release signer" in capsys.readouterr().err
    wrong = base64.b64encode(b"\x01" * 32).decode()
    assert main(["verify-release", manifest, "--public-key", wrong]) == 1
    assert "not the trusted one" in capsys.readouterr().err
    assert main(["verify-release", manifest, "--public-key", "not base64!"]) == 2
    assert "--public-key is not a base64 Ed25519 key" in capsys.readouterr().err
