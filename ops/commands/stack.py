"""``kernel up | down | status | env``: the local Kafka and Postgres."""

from __future__ import annotations

import argparse
from dataclasses import replace

from ops.bootstrap import Kernel
from ops.commands import Subparsers
from ops.stack.postgres_roles import postgres_exports
from ops.stack.stack import ServiceStatus, StackStatus

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    up = sub.add_parser("up", help="start the local Kafka and Postgres (idempotent)")
    up.add_argument(
        "--secure",
        action="store_true",
        help="Kafka with TLS, SCRAM users and ACLs (as KERNEL_KAFKA_SECURITY=sasl_ssl)",
    )
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


def _up(args: argparse.Namespace, kernel: Kernel) -> int:
    if args.secure:
        kernel = Kernel(replace(kernel.settings, kafka_stack_secure=True))
    print(f"state directory: {kernel.settings.state_dir}")
    stack = kernel.stack()
    status = stack.up()
    _print(status)
    print(f"ready in {status.seconds:.1f}s")
    _exports(kernel)
    return 0


def _exports(kernel: Kernel) -> None:
    if kernel.settings.kafka_stack_secure:
        # The stack's own clients find its CA and passwords from the state directory;
        # a process elsewhere takes them from these variables.
        kafka = kernel.stack().kafka
        admin = kafka.client_security(password=False)
        print("export KERNEL_KAFKA_SECURITY=sasl_ssl")
        print(f"export KERNEL_KAFKA_SECURITY_PROTOCOL={admin['security.protocol']}")
        print(f"export KERNEL_KAFKA_SSL_CA_LOCATION={admin['ssl.ca.location']}")
        print(f"export KERNEL_KAFKA_SASL_USERNAME={admin['sasl.username']}")
        print(f"export KERNEL_KAFKA_SASL_PASSWORD_FILE={kafka.password_file()}")
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
