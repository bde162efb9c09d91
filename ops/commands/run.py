"""``kernel run WORKER [WORKER ...]``: run long-lived workers until SIGTERM.

Several workers named at once run in threads of one process (handy locally);
in production run one per process so each scales and restarts on its own.
"""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType

from ops.bootstrap import Kernel
from ops.commands import Subparsers
from ops.workers import workers

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("run", help="run long-lived workers (signer, projectors, sentinel, ...)")
    p.add_argument("names", nargs="+", metavar="WORKER", help=", ".join(workers()) or "none yet")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus /metrics here (default KERNEL_METRICS_PORT, 0 = off)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace, kernel: Kernel) -> int:
    from ops.logging import configure  # noqa: PLC0415

    known = workers()
    unknown = [n for n in args.names if n not in known]
    if unknown:
        print(f"unknown worker(s): {', '.join(unknown)}; known: {', '.join(known)}")
        return 2
    configure("+".join(args.names))
    port = args.metrics_port if args.metrics_port is not None else kernel.settings.metrics_port
    if port:
        from prometheus_client import start_http_server  # noqa: PLC0415

        start_http_server(port, addr=kernel.settings.api_host)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threads = [
        threading.Thread(target=known[n].run, args=(kernel, stop.is_set), name=n, daemon=True)
        for n in args.names
    ]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(timeout=0.5)
        if stop.is_set():
            break
    for t in threads:
        t.join(timeout=30)
    return 0
