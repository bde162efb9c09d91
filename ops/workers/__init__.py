"""Long-running workers, one module each, started by ``kernel run NAME``.

A worker module exposes ``NAME`` (its command name), ``HELP`` (one line) and
``run(kernel, should_stop) -> None``, which builds its runner from the
composition root and loops until ``should_stop()`` is true. ``kernel run``
installs SIGTERM/SIGINT handlers that make ``should_stop`` true, configures
JSON logging and serves Prometheus metrics on KERNEL_METRICS_PORT.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ops.bootstrap import Kernel

__all__ = ["Worker", "workers"]


@dataclass(frozen=True)
class Worker:
    name: str
    help: str
    run: Callable[[Kernel, Callable[[], bool]], None]


def workers() -> dict[str, Worker]:
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found[module.NAME] = Worker(module.NAME, module.HELP, module.run)
    return dict(sorted(found.items()))
