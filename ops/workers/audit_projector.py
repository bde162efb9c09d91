"""``kernel run audit-projector``: the chain topics into ``audit_events``.

One member of the consumer group ``<prefix>projector-audit``: run several
instances (distinct instance ids) to share the partitions. Records it cannot
project go to the dead-letter topic with the reason.
"""

from __future__ import annotations

from collections.abc import Callable

from ops.bootstrap import Kernel
from ops.workers import drive

NAME = "audit-projector"
HELP = "project chain links and checkpoints into Postgres (rows + checkpoint per transaction)"


def run(kernel: Kernel, should_stop: Callable[[], bool]) -> None:
    drive(kernel.audit_projector(), should_stop)
