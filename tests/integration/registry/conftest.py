"""A real Confluent-compatible schema registry (Apicurio), started once for this folder."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from ops.bootstrap import Kernel
from ops.config import Settings
from tests.integration.registry.apicurio import apicurio_registry


@pytest.fixture(scope="session")
def registry_url(base_settings: Settings) -> Iterator[str]:
    with apicurio_registry(base_settings.state_dir) as url:
        yield url


@pytest.fixture
def registry_kernel(settings: Settings, registry_url: str) -> Kernel:
    """A Kernel on the test stack whose codec writes through the registry."""
    kernel = Kernel(replace(settings, schema_registry_url=registry_url))
    kernel.topic_admin().ensure()
    return kernel
