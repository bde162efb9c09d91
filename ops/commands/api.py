"""``kernel api``: serve the HTTP API (query, explain, sync check, health, metrics)."""

from __future__ import annotations

import argparse

from ops.bootstrap import Kernel
from ops.commands import Subparsers

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("api", help="serve the HTTP API")
    p.add_argument("--host", help="default: KERNEL_API_HOST or 127.0.0.1")
    p.add_argument("--port", type=int, help="default: KERNEL_API_PORT or 8080")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace, kernel: Kernel) -> int:
    import uvicorn  # noqa: PLC0415

    from ops.api import build_app  # noqa: PLC0415

    uvicorn.run(
        build_app(kernel),
        host=args.host or kernel.settings.api_host,
        port=args.port or kernel.settings.api_port,
        log_level="info",
    )
    return 0
