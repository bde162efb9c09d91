"""Long-running workers, one module each, started by ``kernel run NAME``.

A worker module exposes ``NAME`` (its command name), ``HELP`` (one line) and
``run(kernel, should_stop) -> None``, which builds its runner from the
composition root and loops until ``should_stop()`` is true. ``kernel run``
installs SIGTERM/SIGINT handlers that make ``should_stop`` true, configures
JSON logging and serves ``/metrics`` and ``/health`` on KERNEL_METRICS_PORT.

Contract with ``kernel run``: ``run`` returns only when ``should_stop()`` said
so, and it calls ``should_stop()`` at least once per poll (that call is the
worker's heartbeat, :mod:`ops.liveness`). Any other end -- an exception, or a
return nobody asked for -- is a death, and the process exits non-zero.
:func:`drive` runs a runner under that contract without letting a failing
``close()`` hide the error that killed the loop.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ops.bootstrap import Kernel

__all__ = ["Runnable", "Worker", "drive", "workers"]

log = logging.getLogger(__name__)


class Runnable(Protocol):
    def run(self, should_stop: Callable[[], bool]) -> None: ...
    def close(self) -> None: ...


def drive(runner: Runnable, should_stop: Callable[[], bool]) -> None:
    """``runner.run(should_stop)`` then ``runner.close()``; the loop's error wins.

    When the loop died, a ``close()`` that fails too (flushing a fenced
    producer raises again) is logged as a warning and the loop's exception is
    the one that propagates: the real cause must reach the operator.
    """
    try:
        runner.run(should_stop)
    except BaseException:
        try:
            runner.close()
        except Exception as exc:  # secondary: the loop's error follows
            log.warning("close after failure also failed: %s: %s", type(exc).__name__, exc)
        raise
    runner.close()


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
