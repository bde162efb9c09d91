"""``kernel``: the command line. Thin: parse, call the composition root, print.

Each subcommand lives in a module of :mod:`ops.commands` that exposes
``register(subparsers)``; they are discovered, so adding a command touches
only its own module. Exit codes: 0 success, 1 a check failed (verification,
drift) or a worker of ``kernel run`` died, 2 an error (bad input, bad
configuration, service unavailable). Every :class:`KernelError` is one line on
stderr, ``kernel COMMAND: error: ...``, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import ops.commands
from ops import telemetry
from ops.bootstrap import bootstrap
from schemas.errors import KernelError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kernel",
        description="Kernel: event-sourced policy enforcement and signed audit on Kafka.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(ops.commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"ops.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        kernel = bootstrap()
        telemetry.configure(
            kernel.settings, telemetry.service_name(args.command, getattr(args, "names", None))
        )
        code: int = args.func(args, kernel)
    except KernelError as exc:
        print(f"kernel {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        telemetry.shutdown()  # the spans still queued are exported
    return code


if __name__ == "__main__":
    sys.exit(main())
