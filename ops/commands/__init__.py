"""One module per ``kernel`` subcommand, each with ``register(subparsers)``.

``args.func(args, kernel) -> exit code`` runs the command with the composition
root's :class:`~ops.bootstrap.Kernel`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Subparsers"]

Subparsers = Any  # argparse's _SubParsersAction is private; typed loosely on purpose
