"""``kernel run checkpointer``: signed Merkle checkpoints over every chain."""

from __future__ import annotations

from collections.abc import Callable

from ops.bootstrap import Kernel
from ops.workers import drive

NAME = "checkpointer"
HELP = "publish signed RFC 6962 checkpoints of each chain (exactly-once)"


def run(kernel: Kernel, should_stop: Callable[[], bool]) -> None:
    runner = kernel.checkpointer()
    drive(runner, should_stop)
