"""``kernel tokens create | revoke | list``: the API's bearer tokens.

``create NAME --role ROLE ...`` prints the token once: only its SHA-256 is
kept (``KERNEL_TOKENS_FILE``, default ``<state dir>/tokens.json``, mode 0600),
so a lost token is revoked and replaced, never recovered. A running API sees a
revocation within a second.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ops.bootstrap import Kernel
from ops.commands import Subparsers
from ops.http.tokens import ROLES, TokenStore

__all__ = ["register"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def register(sub: Subparsers) -> None:
    p = sub.add_parser("tokens", help="bearer tokens of the HTTP API (stored only as hashes)")
    verbs = p.add_subparsers(dest="verb", required=True)
    c = verbs.add_parser("create", help="create a token and print it, once")
    c.add_argument("name", help="who holds it, e.g. ci-deployer; its identity is token:NAME")
    c.add_argument(
        "--role", action="append", required=True, choices=ROLES, help="a role (repeat for more)"
    )
    c.add_argument("--expires", help="lifetime such as 90d, 12h (default: until revoked)")
    c.add_argument("--out", type=Path, help="write the token to this file (mode 0600), not stdout")
    c.add_argument(
        "--if-missing",
        action="store_true",
        help="with --out: succeed without change when that file and a live token of NAME exist",
    )
    c.set_defaults(func=_create)
    r = verbs.add_parser("revoke", help="revoke a token by name or id")
    r.add_argument("name", help="the token's name or id")
    r.set_defaults(func=_revoke)
    ls = verbs.add_parser("list", help="every token's name, roles and state (never the token)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)


def _store(kernel: Kernel) -> TokenStore:
    return TokenStore(kernel.settings.tokens_file)


def _ttl(text: str | None) -> float | None:
    if text is None:
        return None
    unit = text[-1:]
    if unit not in _UNITS or not text[:-1].isdigit() or int(text[:-1]) <= 0:
        raise SystemExit(f"kernel tokens: --expires {text!r}: give a count and s, m, h or d")
    return int(text[:-1]) * _UNITS[unit]


def _create(args: argparse.Namespace, kernel: Kernel) -> int:
    store = _store(kernel)
    if args.if_missing:
        if args.out is None:
            raise SystemExit("kernel tokens: --if-missing needs --out")
        live = any(r.name == args.name and r.valid(time.time()) for r in store.records())
        if live and args.out.exists() and args.out.stat().st_size > 0:
            print(f"token:{args.name} exists; {args.out} kept", file=sys.stderr)
            return 0
    token, record = store.create(args.name, args.role, ttl_s=_ttl(args.expires))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(token + "\n")
    else:
        print(token)
    expires = (
        "never"
        if record.expires_at is None
        else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.expires_at))
    )
    print(
        f"token:{record.name} ({', '.join(record.roles)}), id {record.id}, expires {expires}; "
        "shown once, keep it secret",
        file=sys.stderr,
    )
    return 0


def _revoke(args: argparse.Namespace, kernel: Kernel) -> int:
    record = _store(kernel).revoke(args.name)
    print(f"revoked token:{record.name} (id {record.id})")
    return 0


def _list(args: argparse.Namespace, kernel: Kernel) -> int:
    now = time.time()
    rows: list[dict[str, Any]] = [
        {
            "id": r.id,
            "name": r.name,
            "roles": list(r.roles),
            "state": "revoked" if r.revoked_at else ("live" if r.valid(now) else "expired"),
            "expiresAt": r.expires_at,
        }
        for r in _store(kernel).records()
    ]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    for row in rows:
        print(f"{row['id']}  {row['state']:<8} token:{row['name']}  {', '.join(row['roles'])}")
    return 0
