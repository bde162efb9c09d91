"""The check router's lifespan on real Kafka: the loaded heap is frozen while it serves."""

from __future__ import annotations

import asyncio
import gc

from ops.bootstrap import Kernel
from ops.http.app import create_app
from ops.http.sentinel_check import check_router
from tests import identity


def test_the_heap_alive_at_startup_is_frozen_while_serving_and_released_after(
    kernel: Kernel,
) -> None:
    async def scenario() -> tuple[int, bool]:
        app = create_app([check_router(kernel.sync_check)], gate=identity.gate())
        async with app.router.lifespan_context(app):
            return gc.get_freeze_count(), app.state.policy_feed.ready

    frozen, ready = asyncio.run(scenario())
    assert ready  # frozen after the policy feed read the policies topic
    assert frozen > 1000  # modules, clients, the policy set: out of the collector's walks
    assert gc.get_freeze_count() == 0  # an app's lifetime, not the test process's
