"""README.md's code blocks run as written, so the docs cannot drift."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ops.bootstrap import Kernel
from tests.e2e.conftest import settings_env

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```(python|console)\n(.*?)```", re.S)


def _blocks(kind: str) -> list[str]:
    return [body for k, body in BLOCK.findall((ROOT / "README.md").read_text()) if k == kind]


def test_readme_has_runnable_blocks() -> None:
    assert _blocks("python")
    assert _blocks("console")


def test_python_blocks_run(kernel: Kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in settings_env(kernel.settings).items():
        monkeypatch.setenv(key, value)
    for block in _blocks("python"):
        namespace: dict[str, object] = {}
        exec(compile(block, "README.md", "exec"), namespace)


def test_console_blocks_run(kernel: Kernel) -> None:
    env = settings_env(kernel.settings)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    for block in _blocks("console"):
        for line in block.splitlines():
            if not line.startswith("$ "):
                continue
            done = subprocess.run(
                ["bash", "-o", "pipefail", "-c", line[2:]],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
                check=False,
                cwd=ROOT,
            )
            assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
