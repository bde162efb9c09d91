"""``kernel api``: serve the HTTP API (query, explain, sync check, health, metrics).

``--workers N`` runs N uvicorn worker processes on one socket. Each builds its
own app from the environment (the composition root reads only the
environment), so each has its own policy feed -- a group-less consumer of the
whole policies topic, ready only once it has read it -- and its own
idempotent decision-log producer: a worker decides exactly as a lone process
does. What is per process: the Prometheus registry (a scrape sees one
worker), and reading your own policy change (``wait_for_offset``) holds for
the worker that was asked.

uvicorn runs on uvloop with the httptools parser (both dependencies; its
"auto" picks them). Access logging is off unless ``--access-log``: a line per
request is a measurable share of a millisecond-scale check, and every check is
recorded on the log anyway.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ops.bootstrap import Kernel, bootstrap
from ops.commands import Subparsers

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["app_from_env", "register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("api", help="serve the HTTP API")
    p.add_argument("--host", help="default: KERNEL_API_HOST or 127.0.0.1")
    p.add_argument("--port", type=int, help="default: KERNEL_API_PORT or 8080")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (default 1); the CPU-bound sync check scales with them",
    )
    p.add_argument("--tls-cert", type=Path, help="default: KERNEL_API_TLS_CERT (unset: plaintext)")
    p.add_argument("--tls-key", type=Path, help="default: KERNEL_API_TLS_KEY")
    p.add_argument(
        "--client-ca", type=Path, help="verify client certificates (mTLS); KERNEL_API_CLIENT_CA"
    )
    p.add_argument(
        "--access-log",
        action="store_true",
        help="log a line per request (off by default: checks are recorded on the log)",
    )
    p.set_defaults(func=_serve)


def app_from_env() -> FastAPI:
    """uvicorn factory for ``--workers``: each worker process builds its own app."""
    from ops import telemetry  # noqa: PLC0415
    from ops.http.app import build_app  # noqa: PLC0415

    kernel = bootstrap()
    telemetry.configure(kernel.settings, telemetry.service_name("api"))  # a process of its own
    return build_app(kernel)


def _serve(args: argparse.Namespace, kernel: Kernel) -> int:
    import uvicorn  # noqa: PLC0415

    from ops.http.app import build_app  # noqa: PLC0415
    from ops.http.tls import TlsFiles, plaintext_refusal  # noqa: PLC0415

    s = kernel.settings
    tls = TlsFiles(
        args.tls_cert or s.api_tls_cert,
        args.tls_key or s.api_tls_key,
        args.client_ca or s.api_client_ca,
    )
    tls.check()
    refusal = plaintext_refusal(s.environment, tls)
    if refusal is not None:
        print(f"kernel api: {refusal}", file=sys.stderr)
        return 2
    host = args.host or s.api_host
    port = args.port or s.api_port
    if args.workers > 1:
        uvicorn.run(
            "ops.commands.api:app_from_env",
            factory=True,
            workers=args.workers,
            host=host,
            port=port,
            log_level="info",
            access_log=args.access_log,
            **tls.uvicorn_kwargs(),
        )
        return 0
    uvicorn.run(
        build_app(kernel),
        host=host,
        port=port,
        log_level="info",
        access_log=args.access_log,
        **tls.uvicorn_kwargs(),
    )
    return 0
