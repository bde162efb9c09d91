"""Long-running workers, started by ``kernel run NAME``.

:func:`workers` is the table of them: a name, one line of help, and the
composition root's method that builds the worker's :class:`Runnable` (a
runner, or several polled in turn) from its narrow parts. The modules here hold
what a worker adds around its runners and nothing that builds a client:
decision metrics around the sentinel (:mod:`.sentinel`), the projectors polled
in turn (:mod:`.sentinel_projector`), the auditor's loop (:mod:`.auditor`).
``kernel run`` installs SIGTERM/SIGINT handlers that make ``should_stop`` true,
configures JSON logging and serves ``/metrics`` and ``/health`` on
KERNEL_METRICS_PORT, then :func:`drive` s each worker.

Contract with ``kernel run``: ``run`` returns only when ``should_stop()`` said
so, and it calls ``should_stop()`` at least once per poll (that call is the
worker's heartbeat, :mod:`ops.liveness`). Any other end -- an exception, or a
return nobody asked for -- is a death, and the process exits non-zero.
:func:`drive` runs a runner under that contract without letting a failing
``close()`` hide the error that killed the loop.
"""

from __future__ import annotations

import logging
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
    build: Callable[[Kernel], Runnable]


def workers() -> dict[str, Worker]:
    from ops.bootstrap import Kernel  # noqa: PLC0415 - the root imports this package too

    table = [
        Worker(
            "audit-projector",
            "project chain links and checkpoints into Postgres (rows + checkpoint per transaction)",
            Kernel.audit_projector,
        ),
        Worker(
            "auditor",
            "verify new audit rows and checkpoints every KERNEL_AUDITOR_INTERVAL_S; "
            "set audit metrics",
            Kernel.auditor,
        ),
        Worker(
            "checkpointer",
            "publish signed RFC 6962 checkpoints of each chain (exactly-once)",
            Kernel.checkpointer,
        ),
        Worker(
            "remediation",
            "run the registered remediation actions of remediate decisions and operators' "
            "requests, each at most once (webhook, quarantine); record every step",
            Kernel.remediation,
        ),
        Worker(
            "rollout",
            "judge every canary's gates on the policyChecks; roll back a failing canary, "
            "promote a passing LOW/MEDIUM one (one instance)",
            Kernel.rollout,
        ),
        Worker(
            "sentinel",
            "evaluate every kernel action against the live policies; emit policyCheck events",
            Kernel.sentinel,
        ),
        Worker(
            "sentinel-projector",
            "project policyChange and policyCheck events into policy_registry and policy_checks",
            Kernel.sentinel_projector,
        ),
        Worker(
            "signer",
            "chain and sign audited topics into the chain topic (exactly-once)",
            Kernel.chain_signer,
        ),
    ]
    return {w.name: w for w in table}
