"""``make release``: the wheel, the sdist and the image build context of one commit, signed.

What is released is a commit, not a working tree: ``git archive COMMIT`` is
unpacked into a temporary directory, so an untracked or modified file in the
developer's checkout can never end up in a signed artifact. From that tree:

* the sdist and the wheel, by ``python -m build --no-isolation`` (the wheel is
  built from the sdist, which proves the sdist complete), with the build tools
  of this virtualenv, whose versions the manifest records;
* the image build context, ``kernel-<version>-image-context.tar.gz``: the
  Dockerfile and every source its ``COPY`` lines name, which is what
  ``docker build - < context.tar.gz`` needs.

Builds are reproducible: two builds of one commit with the same tools give the
same bytes. ``SOURCE_DATE_EPOCH`` is the commit's time, which the wheel honours;
setuptools' sdist does not (its gzip header and its generated files carry the
build's clock), so the sdist is rewritten as the context is written: members
sorted, mtime ``SOURCE_DATE_EPOCH``, owner 0, modes 0644/0755, gzip mtime 0.
The files' contents are untouched.

The manifest (:mod:`replay.release_manifest`) lists each artifact's name, size
and SHA-256 with the commit and the builders, and is signed by the release key:
``KERNEL_RELEASE_KEY`` (a key file), or with ``KERNEL_SIGNER_BACKEND=pkcs11`` the
key ``KERNEL_RELEASE_SIGNER_ID`` inside the token -- the same two backends, and
the same refusal of key files in production, as the chain signer
(``docs/decisions/0019-release-signing.md``).
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ops.config import Settings
from replay.release_manifest import (
    FORMAT,
    MANIFEST_NAME,
    Artifact,
    encode_manifest,
    file_artifact,
    sign_manifest,
)
from schemas.errors import ConfigError, KernelError
from streams.chain.signing import Signer, b64

__all__ = [
    "Release",
    "ReleaseError",
    "build_release",
    "dockerfile_sources",
    "release_signer",
]

_BUILD_TIMEOUT_S = 300


class ReleaseError(KernelError):
    """A release could not be built (git, the build, the output directory)."""


@dataclass(frozen=True)
class Release:
    directory: Path
    manifest: Path
    body: dict[str, Any]


def release_signer(settings: Settings) -> Signer:
    """The release key: KERNEL_RELEASE_KEY, or the token's KERNEL_RELEASE_SIGNER_ID key
    (KERNEL_SIGNER_BACKEND=pkcs11), or the key file of KERNEL_RELEASE_SIGNER_ID."""
    from streams.chain.keys import key_path, load_signer  # noqa: PLC0415

    sid = settings.release_signer_id
    if settings.release_key is None and settings.signer_backend == "pkcs11":
        from ops.pkcs11_config import token_config  # noqa: PLC0415
        from streams.chain.pkcs11_signer import open_signer  # noqa: PLC0415

        # the release key has its own label in the token, never the chain signer's
        config = token_config(dataclasses.replace(settings, signer_id=sid, pkcs11_key_label=None))
        return open_signer(config, sid)
    if settings.environment == "production":
        raise ConfigError(
            "KERNEL_ENV=production refuses a release key file: sign releases in the PKCS#11 "
            "token (KERNEL_SIGNER_BACKEND=pkcs11; create the key with "
            f"`KERNEL_SIGNER_ID={sid} kernel keys generate --pkcs11`), see docs/releasing.md"
        )
    path = settings.release_key or key_path(settings.keys_dir, sid)
    if not path.exists():
        raise ConfigError(
            f"no release key at {path}: set KERNEL_RELEASE_KEY, or create one with "
            f"`kernel keys generate --signer-id {sid}` (docs/releasing.md)"
        )
    return load_signer(path)


def build_release(repo: Path, out: Path, signer: Signer, *, commit: str = "HEAD") -> Release:
    """Build, digest and sign the artifacts of ``commit`` into ``out`` (absent or empty)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ReleaseError(f"{out} is not empty: a release directory holds one release only")
    rev = _git(repo, "rev-parse", "--verify", f"{commit}^{{commit}}").strip()
    epoch = int(_git(repo, "log", "-1", "--format=%ct", rev).strip())
    with tempfile.TemporaryDirectory(prefix="kernel-release-") as tmp:
        src, dist = Path(tmp) / "src", Path(tmp) / "dist"
        _export(repo, rev, src)
        project = tomllib.loads((src / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        name, ver = str(project["name"]), str(project["version"])
        staged = Path(tmp) / "out"
        staged.mkdir()
        context = staged / f"{name}-{ver}-image-context.tar.gz"
        _write_tar(context, _tree_entries(src, ["Dockerfile", *dockerfile_sources(src)]), epoch)
        _build(src, dist, epoch)
        sdist, wheel = _one(dist, "*.tar.gz"), _one(dist, "*.whl")
        with tarfile.open(sdist) as original:
            _write_tar(staged / sdist.name, _tar_entries(original), epoch)
        shutil.copyfile(wheel, staged / wheel.name)
        artifacts = sorted(
            (
                file_artifact(staged / sdist.name, "sdist"),
                file_artifact(staged / wheel.name, "wheel"),
                file_artifact(context, "image-context"),
            ),
            key=lambda a: a.name,
        )
        body = _body(name, ver, rev=rev, epoch=epoch, artifacts=artifacts, signer=signer)
        (staged / MANIFEST_NAME).write_bytes(encode_manifest(sign_manifest(body, signer)))
        out.mkdir(parents=True, exist_ok=True)
        for item in sorted(staged.iterdir()):
            shutil.move(str(item), out / item.name)
    return Release(out, out / MANIFEST_NAME, body)


def dockerfile_sources(src: Path) -> list[str]:
    """The context paths the Dockerfile's COPY/ADD lines read (not ``--from`` stages)."""
    sources: list[str] = []
    for lineno, line in enumerate((src / "Dockerfile").read_text().splitlines(), 1):
        words = line.split()
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        if line.rstrip().endswith("\\") or "[" in line:
            raise ReleaseError(
                f"Dockerfile:{lineno}: write COPY on one line, without the JSON form, "
                f"so the release can tell which files the image needs"
            )
        flags = [w for w in words[1:] if w.startswith("--")]
        if any(f.startswith("--from") for f in flags):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        for source in args[:-1]:
            path = Path(source)
            if path.is_absolute() or ".." in path.parts or any(c in source for c in "*?"):
                raise ReleaseError(f"Dockerfile:{lineno}: {source!r} is not a plain context path")
            if not (src / path).exists():
                raise ReleaseError(f"Dockerfile:{lineno}: {source!r} is not in the commit")
            sources.append(path.as_posix())
    return sorted(set(sources))


def _body(
    name: str, ver: str, *, rev: str, epoch: int, artifacts: list[Artifact], signer: Signer
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "project": name,
        "version": ver,
        "commit": rev,
        "sourceDateEpoch": epoch,
        "builder": {
            "python": platform.python_version(),
            "build": _version("build"),
            "setuptools": _version("setuptools"),
        },
        "artifacts": [a.as_json() for a in artifacts],
        "signerId": signer.signer_id,
        "publicKey": b64(signer.public_key),
    }


def _git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
        )
    except FileNotFoundError as exc:
        raise ReleaseError("git is not installed: a release is built from a git commit") from exc
    except subprocess.CalledProcessError as exc:
        raise ReleaseError(f"git {' '.join(args)}: {exc.stderr.strip()}") from exc
    return done.stdout


def _export(repo: Path, rev: str, src: Path) -> None:
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", rev], capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise ReleaseError(f"git archive {rev}: {archive.stderr.decode(errors='replace').strip()}")
    src.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(src, filter="data")
    # The wheel records file modes: make them independent of umask and of who unpacked.
    for path in [src, *src.rglob("*")]:
        if path.is_symlink():
            continue
        executable = path.is_dir() or path.stat().st_mode & 0o100
        path.chmod(0o755 if executable else 0o644)


def _build(src: Path, dist: Path, epoch: int) -> None:
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(src)],
            cwd=src,
            env=env,
            capture_output=True,
            text=True,
            timeout=_BUILD_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ReleaseError(f"python -m build took over {_BUILD_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
        raise ReleaseError(f"python -m build failed (install the dev tools: make install):\n{tail}")


def _one(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    if len(found) != 1:
        raise ReleaseError(f"the build made {len(found)} {pattern} files, expected one")
    return found[0]


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError as exc:
        raise ReleaseError(f"{distribution} is not installed: run make install") from exc


# (name, file bytes or None for a directory, executable)
_Entry = tuple[str, bytes | None, bool]


def _tree_entries(src: Path, roots: Iterable[str]) -> list[_Entry]:
    entries: list[_Entry] = []
    for root in roots:
        top = src / root
        for path in [top, *sorted(top.rglob("*"))] if top.is_dir() else [top]:
            name = path.relative_to(src).as_posix()
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                raise ReleaseError(f"{name}: only plain files and directories are released")
            data = None if path.is_dir() else path.read_bytes()
            entries.append((name, data, bool(path.stat().st_mode & 0o100)))
    return entries


def _tar_entries(tar: tarfile.TarFile) -> list[_Entry]:
    entries: list[_Entry] = []
    for member in tar.getmembers():
        if member.isdir():
            entries.append((member.name, None, True))
        elif member.isfile():
            f = tar.extractfile(member)
            assert f is not None  # a regular file always has content
            entries.append((member.name, f.read(), bool(member.mode & 0o100)))
        else:
            raise ReleaseError(f"the sdist holds {member.name}, neither a file nor a directory")
    return entries


def _write_tar(out: Path, entries: Iterable[_Entry], epoch: int) -> None:
    """A gzipped tar whose bytes depend only on the entries and ``epoch``."""
    seen: set[str] = set()
    with (
        out.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, data, executable in sorted(entries, key=lambda e: e[0]):
            if name in seen:
                continue
            seen.add(name)
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = epoch, 0, 0, "", ""
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o755 if executable else 0o644
                tar.addfile(info, io.BytesIO(data))
