"""Which URL each database role connects with, and the local stack's passwords."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ops.bootstrap import Kernel
from ops.config import DATABASE_ROLE_VARS, ENV_VARS, Settings
from ops.stack.postgres_roles import LOCAL_ROLES, Passwords, local_url, postgres_exports
from projections.postgres import redacted


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"KERNEL_STATE_DIR": str(tmp_path), **env})


def test_every_role_uses_postgres_url_when_it_has_no_url_of_its_own(tmp_path: Path) -> None:
    s = _settings(tmp_path, POSTGRES_URL="postgresql://u:p@db:5432/k")
    kernel = Kernel(s)
    for role in (*DATABASE_ROLE_VARS, "kernel", "projector"):
        assert kernel.database(role).url == "postgresql://u:p@db:5432/k"


def test_a_role_with_its_own_url_connects_with_it(tmp_path: Path) -> None:
    s = _settings(
        tmp_path,
        POSTGRES_URL="postgresql://owner@db/k",
        KERNEL_DATABASE_URL_API="postgresql://api@db/k",
        KERNEL_DATABASE_URL_AUDIT_PROJECTOR="postgresql://proj@db/k",
    )
    kernel = Kernel(s)
    assert kernel.database("api").url == "postgresql://api@db/k"
    assert kernel.database("audit_projector").url == "postgresql://proj@db/k"
    assert kernel.database("auditor").url == "postgresql://owner@db/k"
    assert kernel.database().url == "postgresql://owner@db/k"
    assert set(DATABASE_ROLE_VARS.values()) <= set(ENV_VARS)


def test_local_passwords_are_generated_once_and_private(tmp_path: Path) -> None:
    assert local_url(tmp_path, 5) == "postgresql://kernel@127.0.0.1:5/kernel"  # not made yet
    first = Passwords(tmp_path).ensure()
    assert Passwords(tmp_path).ensure() == first
    assert {"kernel", *(r.name for r in LOCAL_ROLES)} <= set(first)
    path = Passwords(tmp_path).path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert _settings(tmp_path).database_url == (
        f"postgresql://kernel:{first['kernel']}@127.0.0.1:15432/kernel"
    )


def test_kernel_up_exports_a_url_per_role(tmp_path: Path) -> None:
    passwords = Passwords(tmp_path).ensure()
    lines = postgres_exports(_settings(tmp_path))
    owner = f"postgresql://kernel_owner:{passwords['kernel_owner']}@127.0.0.1:15432/kernel"
    assert lines[0] == f"export POSTGRES_URL={owner}"
    assert [line.split("=", 1)[0] for line in lines[1:]] == [
        f"export {v}" for v in DATABASE_ROLE_VARS.values()
    ]
    assert f"kernel_api:{passwords['kernel_api']}@" in "\n".join(lines)
    external = postgres_exports(_settings(tmp_path, POSTGRES_URL="postgresql://x@db/k"))
    assert external == ["export POSTGRES_URL=postgresql://x@db/k"]


def test_messages_name_a_url_without_its_password() -> None:
    assert redacted("postgresql://k:s3cret@h:1/d") == "postgresql://k:***@h:1/d"
    assert redacted("postgresql://k@h:1/d") == "postgresql://k@h:1/d"
    assert redacted("host=h user=k") == "host=h user=k"


def test_kernel_env_prints_the_exports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ops.cli import main

    for name in [*ENV_VARS, "KERNEL_DEDUP_WINDOW"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KERNEL_STATE_DIR", str(tmp_path))
    Passwords(tmp_path).ensure()
    assert main(["env"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "export KERNEL_BOOTSTRAP_SERVERS=127.0.0.1:19092"
    assert lines[1:] == postgres_exports(_settings(tmp_path))
