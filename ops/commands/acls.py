"""``kernel acls apply | list``: the Kafka ACLs of each principal (ops.kafka_acls).

``apply`` creates every ACL of the table for this deployment's topic prefix
through the Admin API (as a principal allowed to alter the cluster: the
secured local stack's ``kernel-admin``); ACLs that exist are left as they are.
``apply --prune`` also deletes what the table no longer gives those principals
on this prefix. ``list`` prints the table, or with ``--broker`` what the
broker holds.
"""

from __future__ import annotations

import argparse

from ops.bootstrap import Kernel
from ops.commands import Subparsers
from ops.kafka_acls import PRINCIPALS, grants

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    acls = sub.add_parser("acls", help="the Kafka ACLs of each worker's principal")
    verbs = acls.add_subparsers(dest="verb", required=True)
    apply = verbs.add_parser("apply", help="create the ACLs of every principal")
    apply.add_argument(
        "--prune",
        action="store_true",
        help="also delete ACLs of these principals on this prefix that the table lacks",
    )
    apply.set_defaults(func=_apply)
    ls = verbs.add_parser("list", help="the principals and their ACLs")
    ls.add_argument("--broker", action="store_true", help="the ACLs the broker holds")
    ls.set_defaults(func=_list)


def _apply(args: argparse.Namespace, kernel: Kernel) -> int:
    acls, table = kernel.kafka_acls(), grants(kernel.names)
    count = acls.apply(table)
    users = len(PRINCIPALS) - 1  # the admin is a super user: no ACLs
    print(f"applied {count} ACLs for topics {kernel.names.prefix}* to {users} principals")
    if args.prune:
        removed = acls.prune(table, PRINCIPALS, kernel.names.prefix)
        for line in removed:
            print(f"removed {line}")
        print(f"removed {len(removed)} stale ACLs")
    return 0


def _list(args: argparse.Namespace, kernel: Kernel) -> int:
    if args.broker:
        for line in kernel.kafka_acls().existing():
            print(line)
        return 0
    table = grants(kernel.names)
    for user, role in PRINCIPALS.items():
        print(f"{user}: {role}")
        for g in table:
            if g.user == user:
                print(f"    {g.describe()}")
    return 0
