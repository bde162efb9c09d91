"""``kernel run signer``: chain and sign every audited event, exactly once."""

from __future__ import annotations

from collections.abc import Callable

from ops.bootstrap import Kernel
from ops.workers import drive

NAME = "signer"
HELP = "chain and sign audited topics into the chain topic (exactly-once)"


def run(kernel: Kernel, should_stop: Callable[[], bool]) -> None:
    runner = kernel.chain_signer()
    drive(runner, should_stop)
