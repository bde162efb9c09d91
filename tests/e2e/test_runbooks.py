"""Every command in docs/runbooks/ runs against the test stack with its declared exit code.

The convention is documented at the top of docs/runbooks/README.md: ``$ ``
lines in ``console`` blocks, run in order per page in one working directory;
exit 0 unless the line ends with ``# exits N``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ops.bootstrap import Kernel
from projections.migrate import migrate
from tests.e2e.conftest import settings_env

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "docs" / "runbooks"
PAGES = ("health-check-failure", "audit-integrity-alert", "key-compromise", "dr-restore")
BLOCK = re.compile(r"```console\n(.*?)```", re.S)
EXITS = re.compile(r"#\s*exits\s+(\d+)\b")
STEP = re.compile(r"^## \d+\. ", re.M)


@dataclass(frozen=True)
class Command:
    line: str
    expected: int


def commands(page: Path) -> list[Command]:
    found = []
    for block in BLOCK.findall(page.read_text()):
        for line in block.splitlines():
            if line.startswith("$ "):
                match = EXITS.search(line)
                found.append(Command(line[2:], int(match.group(1)) if match else 0))
    return found


def test_every_page_has_numbered_steps_and_kernel_commands() -> None:
    for name in PAGES:
        page = RUNBOOKS / f"{name}.md"
        assert len(STEP.findall(page.read_text())) >= 3, f"{page}: numbered steps (## 1. ...)"
        found = commands(page)
        assert found, f"{page} has no $ lines"
        for c in found:
            assert c.line.startswith("kernel "), f"{page}: {c.line!r} is not a kernel command"
    assert "# exits N" in (RUNBOOKS / "README.md").read_text()


def test_exit_comment_is_parsed() -> None:
    assert EXITS.search("kernel db status   # exits 1 while pending")
    assert not EXITS.search("kernel lag --json > lag.json")


@pytest.fixture
def restore_url(second_database_url: str) -> str:
    return second_database_url


@pytest.mark.parametrize("name", PAGES)
def test_runbook_commands_run(
    name: str, db_kernel: Kernel, restore_url: str, tmp_path: Path
) -> None:
    migrate(db_kernel.settings.database_url)  # a healthy deployment: topics and schema
    env = settings_env(db_kernel.settings)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env["KERNEL_STATE_DIR"] = str(tmp_path / "state")  # key files stay in this test
    env["RESTORE_URL"] = restore_url
    workdir = tmp_path / "work"
    workdir.mkdir()
    started = time.monotonic()
    for c in commands(RUNBOOKS / f"{name}.md"):
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", c.line],
            capture_output=True,
            text=True,
            env=env,
            cwd=workdir,
            timeout=60,
            check=False,
        )
        assert done.returncode == c.expected, (
            f"{name}.md: `{c.line}` exited {done.returncode}, expected {c.expected}\n"
            f"{done.stdout}\n{done.stderr}"
        )
    assert time.monotonic() - started < 60
