"""``kernel up | down | status | env``: the local Kafka and Postgres."""

from __future__ import annotations

import argparse

from ops.bootstrap import Kernel
from ops.commands import Subparsers
from ops.stack.postgres_roles import postgres_exports
from ops.stack.stack import ServiceStatus, StackStatus

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    up = sub.add_parser("up", help="start the local Kafka and Postgres (idempotent)")
    up.set_defaults(func=_up)
    down = sub.add_parser("down", help="stop the local Kafka and Postgres cleanly")
    down.set_defaults(func=_down)
    status = sub.add_parser("status", help="show the local Kafka and Postgres")
    status.set_defaults(func=_status)
    env = sub.add_parser(
        "env", help='print the exports of the local stack (eval "$(kernel env)"), each role\'s URL'
    )
    env.set_defaults(func=_env)


def _line(s: ServiceStatus) -> str:
    state = "running" if s.running else "stopped"
    how = "managed" if s.managed else "external"
    extra = f", {s.detail}" if s.detail else ""
    return f"{s.name:<9} {state:<8} {s.address}  ({how}{extra})"


def _print(status: StackStatus) -> None:
    print(_line(status.kafka))
    print(_line(status.postgres))


def _up(_args: argparse.Namespace, kernel: Kernel) -> int:
    print(f"state directory: {kernel.settings.state_dir}")
    status = kernel.stack().up()
    _print(status)
    print(f"ready in {status.seconds:.1f}s")
    _exports(kernel)
    return 0


def _exports(kernel: Kernel) -> None:
    print(f"export KERNEL_BOOTSTRAP_SERVERS={kernel.settings.kafka_bootstrap}")
    for line in postgres_exports(kernel.settings):
        print(line)


def _env(_args: argparse.Namespace, kernel: Kernel) -> int:
    _exports(kernel)
    return 0


def _down(_args: argparse.Namespace, kernel: Kernel) -> int:
    stopped = kernel.stack().down()
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def _status(_args: argparse.Namespace, kernel: Kernel) -> int:
    status = kernel.stack().status()
    _print(status)
    return 0 if status.healthy else 1
