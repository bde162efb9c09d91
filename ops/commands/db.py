"""``kernel db migrate | status``: the projection database's schema."""

from __future__ import annotations

import argparse

from ops.bootstrap import Kernel
from ops.commands import Subparsers
from projections.migrate import migrate, migrations, pending
from projections.postgres import open_connection

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("db", help="migrate the projection database")
    verbs = p.add_subparsers(dest="verb", required=True)
    m = verbs.add_parser("migrate", help="apply pending migrations")
    m.add_argument(
        "--database-url",
        help="default: KERNEL_DATABASE_URL_MIGRATE, POSTGRES_URL or the local stack",
    )
    m.set_defaults(func=_migrate)
    s = verbs.add_parser("status", help="list migrations; exit 1 if any is pending")
    s.add_argument("--database-url")
    s.set_defaults(func=_status)


def _migrate(args: argparse.Namespace, kernel: Kernel) -> int:
    ran = migrate(args.database_url or kernel.settings.database_url_for("migrate"))
    for m in ran:
        print(f"applied {m.version:04d}_{m.name}")
    print(
        f"database is at version {migrations()[-1].version:04d}"
        if migrations()
        else "no migrations"
    )
    return 0


def _status(args: argparse.Namespace, kernel: Kernel) -> int:

    with open_connection(args.database_url or kernel.settings.database_url_for("migrate")) as conn:
        todo = {m.version for m in pending(conn)}
    for m in migrations():
        print(f"{m.version:04d}_{m.name:<40} {'pending' if m.version in todo else 'applied'}")
    return 1 if todo else 0
