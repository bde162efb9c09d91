"""Shared fixtures: the real test stack (Kafka + Postgres) and isolated namespaces.

The stack is started once per session under its own state directory and ports
(so a developer's ``kernel up`` is untouched) and stopped at the end unless it
was already running. Every test gets uuid-named topics and, when it asks, its
own database, so tests never see each other's data.

With pytest-xdist (``make test`` runs ``-n 2 --dist loadfile``) the controller
starts the stack before its workers and stops it after them; each worker finds
it running and leaves it be. Isolation by topic prefix and database is what
lets two workers share one broker and one Postgres.
"""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from ops.bootstrap import Kernel
from ops.config import Settings, default_state_dir
from ops.stack import LocalStack
from tests import identity
from tests.softhsm import SoftHsmToken, init_token

TEST_KAFKA_PORT = int(os.environ.get("KERNEL_TEST_KAFKA_PORT", "29092"))
TEST_PG_PORT = int(os.environ.get("KERNEL_TEST_PG_PORT", "25432"))


def _test_state_dir() -> Path:
    if os.environ.get("KERNEL_TEST_STATE_DIR"):
        return Path(os.environ["KERNEL_TEST_STATE_DIR"])
    return default_state_dir().with_name(default_state_dir().name + "-test")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in ("unit", "integration", "e2e"):
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


def _base_settings() -> Settings:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KERNEL_", "POSTGRES_URL"))}
    env["KERNEL_STATE_DIR"] = str(_test_state_dir())
    env["KERNEL_KAFKA_PORT"] = str(TEST_KAFKA_PORT)
    env["KERNEL_PG_PORT"] = str(TEST_PG_PORT)
    env["KERNEL_TOKENS_FILE"] = str(identity.TOKENS_FILE)
    return Settings.from_env(env)


def _xdist_controller(config: pytest.Config) -> bool:
    """This process hands tests to xdist workers (``-n N``), running none itself."""
    return not hasattr(config, "workerinput") and bool(getattr(config.option, "numprocesses", 0))


_CONTROLLER_STACK: list[LocalStack] = []  # the stack the controller started (and stops)


def pytest_sessionstart(session: pytest.Session) -> None:
    if _xdist_controller(session.config):
        local = LocalStack(_base_settings(), durable=False)
        if not local.status().healthy:
            local.up()
            if not os.environ.get("KERNEL_TEST_KEEP_STACK"):
                _CONTROLLER_STACK.append(local)


def pytest_sessionfinish(session: pytest.Session) -> None:
    while _CONTROLLER_STACK:
        _CONTROLLER_STACK.pop().down()


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return _base_settings()


@pytest.fixture(scope="session")
def stack(base_settings: Settings) -> Iterator[LocalStack]:
    local = LocalStack(base_settings, durable=False)
    was_running = local.status().healthy
    local.up()
    yield local
    # Free the clients tests left behind before the broker goes away, or their
    # reconnect attempts print after pytest's summary.
    gc.collect()
    if not was_running and not os.environ.get("KERNEL_TEST_KEEP_STACK"):
        local.down()


@pytest.fixture
def settings(stack: LocalStack, base_settings: Settings) -> Settings:
    """Settings with a fresh uuid topic prefix (topics not yet created)."""
    return replace(base_settings, topic_prefix=f"t{uuid.uuid4().hex[:12]}.")


@pytest.fixture
def kernel(settings: Settings) -> Kernel:
    """A Kernel on the test stack with its own topics, created."""
    k = Kernel(settings)
    k.topic_admin().ensure()
    return k


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``admin_url``; dropped on exit."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(stack: LocalStack, base_settings: Settings) -> Iterator[str]:
    """A fresh, empty database; dropped after the test."""
    with fresh_database(base_settings.database_url) as url:
        yield url


@pytest.fixture
def second_database_url(stack: LocalStack, base_settings: Settings) -> Iterator[str]:
    """Another fresh, empty database (a restore target, say)."""
    with fresh_database(base_settings.database_url) as url:
        yield url


@pytest.fixture
def db_kernel(kernel: Kernel, database_url: str) -> Kernel:
    """A Kernel with its own topics and its own database."""
    return Kernel(replace(kernel.settings, postgres_url=database_url))


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsmToken]:
    """A SoftHSM2 token of this session (PKCS#11 signer tests); see tests/softhsm.py."""
    token = init_token(tmp_path_factory.mktemp("softhsm"))
    before = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(token.conf)
    yield token
    if before is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = before
