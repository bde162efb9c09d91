"""Drive the ``kernel`` command as a user would: a subprocess with environment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ops.bootstrap import Kernel
from ops.config import Settings
from ops.stack import LocalStack
from tests.e2e.doors import Doors, deployed

KernelCLI = Callable[..., subprocess.CompletedProcess[str]]


def settings_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERNEL_")}
    env.update(
        KERNEL_STATE_DIR=str(settings.state_dir),
        KERNEL_BOOTSTRAP_SERVERS=settings.kafka_bootstrap,
        KERNEL_KAFKA_PORT=str(settings.kafka_port),
        KERNEL_PG_PORT=str(settings.pg_port),
        KERNEL_TOPIC_PREFIX=settings.topic_prefix,
        KERNEL_PUBLISH_TIMEOUT_S="10",
        POSTGRES_URL=settings.database_url,
        KERNEL_TOKENS_FILE=str(settings.tokens_file),
    )
    return env


def make_cli(settings: Settings) -> KernelCLI:
    exe = str(Path(sys.executable).with_name("kernel"))

    def run(
        *args: str,
        input: str | None = None,
        timeout: float = 120,
        cwd: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        env = settings_env(settings)
        env.update(extra_env or {})
        return subprocess.run(
            [exe, *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            cwd=cwd,
            check=False,
        )

    return run


@pytest.fixture
def cli(kernel: Kernel) -> KernelCLI:
    """``kernel`` on the test stack, with this test's topics (created)."""
    return make_cli(kernel.settings)


@pytest.fixture
def db_cli(db_kernel: Kernel) -> KernelCLI:
    """``kernel`` with this test's topics and its own database."""
    return make_cli(db_kernel.settings)


@pytest.fixture(scope="session")
def doors(
    stack: LocalStack, base_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Doors]:
    """One ``kernel api`` behind its doors for the session (:mod:`tests.e2e.doors`):
    the identity matrix and schemathesis share it."""
    with deployed(base_settings, tmp_path_factory.mktemp("doors")) as d:
        yield d
