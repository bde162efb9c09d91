"""``kernel run WORKER [WORKER ...]``: run long-lived workers until SIGTERM.

Several workers named at once run in threads of one process (handy locally);
in production run one per process so each scales and restarts on its own.
``--instance N`` (or KERNEL_INSTANCE_ID) names this instance inside each
worker's consumer group: start another instance with a new id, on any
machine, and Kafka splits the partitions between them.

Supervision, so that a supervisor restarting on failure sees every failure:

* a worker that ends for any reason but SIGTERM/SIGINT -- an exception, or a
  return nobody asked for -- is logged once (worker, instance, the cause) and
  the process exits 1, after asking the other workers to stop (bounded);
* SIGTERM/SIGINT asks every worker to stop; all stopped within
  ``STOP_TIMEOUT_S``: exit 0, otherwise exit 1 naming the ones that did not.

Exit codes: 0 stopped as asked, 1 a worker died or did not stop, 2 bad usage.

A worker that is alive but makes no progress can be asked where it is:
``kill -USR1 PID`` writes every thread's Python stack to its stderr
(:mod:`faulthandler`) and the worker goes on.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import replace
from types import FrameType

from ops import telemetry
from ops.bootstrap import Kernel
from ops.commands import Subparsers
from ops.liveness import Heartbeats
from ops.workers import Worker, drive, workers
from schemas.errors import ConfigError

__all__ = ["STOP_TIMEOUT_S", "register"]

STOP_TIMEOUT_S = 10.0

log = logging.getLogger("kernel.run")


def register(sub: Subparsers) -> None:
    p = sub.add_parser("run", help="run long-lived workers (signer, projectors, sentinel, ...)")
    p.add_argument("names", nargs="+", metavar="WORKER", help=", ".join(workers()) or "none yet")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus /metrics and /health here (default KERNEL_METRICS_PORT, 0 = off)",
    )
    p.add_argument(
        "--instance",
        default=None,
        metavar="ID",
        help="this instance's id in each worker's group (default KERNEL_INSTANCE_ID, 0); "
        "run more instances with distinct ids to share the partitions",
    )
    p.set_defaults(func=_run)


class _Supervised(threading.Thread):
    """One worker's thread; remembers how it ended."""

    def __init__(self, worker: Worker, kernel: Kernel, stop: threading.Event, beats: Heartbeats):
        super().__init__(name=worker.name, daemon=True)
        self.worker = worker
        self._kernel = kernel
        self._should_stop = beats.ticking(worker.name, stop.is_set)
        self._stop_event = stop
        self._beats = beats
        self.cause: str | None = None  # set when it ended without being asked to
        self.error: BaseException | None = None  # what it raised, for the log's traceback

    def run(self) -> None:
        try:
            drive(self.worker.build(self._kernel), self._should_stop)
        except BaseException as exc:  # every end is reported
            self.cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.error = exc
        else:
            if not self._stop_event.is_set():
                self.cause = "returned without being asked to stop"
        if self.cause is not None:
            self._beats.dead(self.worker.name, self.cause)


def _run(args: argparse.Namespace, kernel: Kernel) -> int:
    from ops.logging import configure  # noqa: PLC0415

    known = workers()
    unknown = [n for n in args.names if n not in known]
    if unknown:
        print(f"unknown worker(s): {', '.join(unknown)}; known: {', '.join(known)}")
        return 2
    if args.instance is not None:
        from ops.config import instance_id_token  # noqa: PLC0415

        kernel = Kernel(replace(kernel.settings, instance_id=instance_id_token(args.instance)))
    instance = kernel.settings.instance_id
    configure("+".join(args.names))
    beats = Heartbeats(instance, max_age_s=kernel.settings.health_max_age_s)
    port = args.metrics_port if args.metrics_port is not None else kernel.settings.metrics_port
    if port:
        from ops.worker_http import WorkerHttpServer  # noqa: PLC0415

        try:
            WorkerHttpServer(beats, port, kernel.settings.api_host).start()
        except OSError as exc:
            raise ConfigError(
                f"cannot serve /metrics and /health on {kernel.settings.api_host}:{port}: {exc}; "
                "choose another --metrics-port (or KERNEL_METRICS_PORT, 0 = off)"
            ) from exc
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)
    threads = [_Supervised(known[n], kernel, stop, beats) for n in args.names]
    for t in threads:
        t.start()
    died: list[_Supervised] = []
    while not stop.is_set():
        died = [t for t in threads if not t.is_alive()]
        if died:
            break
        stop.wait(0.2)
    asked = not died  # a signal, not a death, ended the loop
    for t in died:
        # One JSON line: the cause in msg, the traceback in its "exc" field.
        log.error(
            "worker %s (instance %s) died: %s", t.worker.name, instance,
            t.cause or "unknown cause", exc_info=t.error,
        )  # fmt: skip
    stop.set()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [t.worker.name for t in threads if t.is_alive()]
    late = [t for t in threads if t not in died and not t.is_alive() and t.cause is not None]
    for t in late:  # failed while stopping: still a failure, still reported once
        log.error(
            "worker %s (instance %s) failed while stopping: %s", t.worker.name, instance,
            t.cause, exc_info=t.error,
        )  # fmt: skip
    if stuck:
        log.error(
            "worker(s) %s (instance %s) did not stop within %.0fs", ", ".join(stuck), instance,
            STOP_TIMEOUT_S,
        )  # fmt: skip
        telemetry.flush(timeout_s=2.0)  # os._exit skips the normal shutdown's export
        logging.shutdown()
        sys.stderr.flush()
        os._exit(1)  # a thread stuck in librdkafka would block interpreter exit
    return 0 if asked and not late else 1
