"""``kernel schemas list | check | lock``: the event schemas and their evolution."""

from __future__ import annotations

import argparse
import json
from importlib import resources
from pathlib import Path

from ops.bootstrap import Kernel
from ops.commands import Subparsers
from schemas.catalog import catalog
from schemas.compat import check_catalog

__all__ = ["lock_path", "register"]


def lock_path() -> Path:
    return Path(str(resources.files("schemas").joinpath("avro/schemas.lock.json")))


def register(sub: Subparsers) -> None:
    p = sub.add_parser("schemas", help="list, check or lock the event schemas")
    verbs = p.add_subparsers(dest="verb", required=True)
    verbs.add_parser("list", help="every event type and version").set_defaults(func=_list)
    verbs.add_parser("check", help="compatibility and lock; exit 1 on a problem").set_defaults(
        func=_check
    )
    verbs.add_parser("lock", help="record the fingerprint of new versions").set_defaults(func=_lock)


def _list(_args: argparse.Namespace, _kernel: Kernel) -> int:
    for s in catalog().all():
        print(f"{s.key:<24} {s.fingerprint.hex()}")
    return 0


def _problems() -> list[str]:
    problems = check_catalog(catalog())
    locked: dict[str, str] = json.loads(lock_path().read_text())
    current = catalog().lock()
    for key, fp in locked.items():
        if key not in current:
            problems.append(f"{key} is locked but its schema file is gone")
        elif current[key] != fp:
            problems.append(
                f"{key} changed after it was published (fingerprint {fp} -> "
                f"{current[key]}); add a new version instead"
            )
    problems += [
        f"{key} is not locked; run `kernel schemas lock`" for key in current if key not in locked
    ]
    return problems


def _check(_args: argparse.Namespace, _kernel: Kernel) -> int:
    problems = _problems()
    for p in problems:
        print(p)
    print("schemas: ok" if not problems else f"schemas: {len(problems)} problem(s)")
    return 1 if problems else 0


def _lock(_args: argparse.Namespace, _kernel: Kernel) -> int:
    locked: dict[str, str] = json.loads(lock_path().read_text()) if lock_path().exists() else {}
    current = catalog().lock()
    changed = [k for k in locked if k in current and locked[k] != current[k]]
    if changed:
        print("refusing to re-lock published versions: " + ", ".join(changed))
        return 1
    incompatible = check_catalog(catalog())
    if incompatible:
        print("\n".join(incompatible))
        return 1
    added = sorted(set(current) - set(locked))
    locked.update(current)
    lock_path().write_text(json.dumps(dict(sorted(locked.items())), indent=2) + "\n")
    print("locked: " + (", ".join(added) if added else "nothing new"))
    return 0
