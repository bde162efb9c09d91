"""The local cluster's roles and their passwords (kept in the state dir).

Who may do what in a database is the migrations' business (0300 grants each
role exactly its statements); *who logs in as which role* is the deployment's.
For the local stack that is this module: every role of :data:`LOCAL_ROLES`
logs in with a password generated once and kept in
``<state>/secrets/postgres-passwords.json`` (mode 0600 in a 0700 directory:
readable by the user who runs Kernel, not by the cluster's ``postgres``
account), and :func:`role_urls` gives each Kernel role its URL for ``kernel up``
to print.

``kernel`` is the cluster's bootstrap superuser, the stack's own administrative
door (it creates databases, roles and the tests' per-test databases); no
process of a deployment needs it. ``kernel_owner`` owns the ``kernel`` database
and everything the migrations create, and may create databases (the DR drill
drops and recreates its database); it is neither a superuser nor may it create
roles.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from ops.config import Settings

__all__ = [
    "ADMIN",
    "LOCAL_ROLES",
    "OWNER",
    "LocalRole",
    "Passwords",
    "local_url",
    "postgres_exports",
    "role_urls",
]

ADMIN = "kernel"
OWNER = "kernel_owner"
DATABASE = "kernel"


@dataclass(frozen=True)
class LocalRole:
    name: str  # the Postgres role
    attributes: str  # CREATE/ALTER ROLE options besides LOGIN and PASSWORD
    uses: tuple[str, ...]  # the Kernel roles (Kernel.database(role)) that connect as it


LOCAL_ROLES: tuple[LocalRole, ...] = (
    LocalRole(OWNER, "NOSUPERUSER CREATEDB NOCREATEROLE", ("migrate",)),
    LocalRole("kernel_api", "NOSUPERUSER NOCREATEDB NOCREATEROLE", ("api",)),
    LocalRole("kernel_projector", "NOSUPERUSER NOCREATEDB NOCREATEROLE", ("audit_projector",)),
    LocalRole(
        "kernel_sentinel_projector",
        "NOSUPERUSER NOCREATEDB NOCREATEROLE",
        ("sentinel_projector",),
    ),
    LocalRole("kernel_auditor", "NOSUPERUSER NOCREATEDB NOCREATEROLE", ("auditor",)),
)


class Passwords:
    """``<state>/secrets/postgres-passwords.json``: one generated password per local role."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "secrets" / "postgres-passwords.json"

    def read(self) -> dict[str, str]:
        try:
            found = json.loads(self.path.read_text())
        except (FileNotFoundError, PermissionError, ValueError):
            return {}
        return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}

    def ensure(self) -> dict[str, str]:
        """Every role's password, generating (and saving) the missing ones.

        Under a file lock: two processes bringing the stack up at once must not
        each save (and set) passwords of their own.
        """
        wanted = [ADMIN, *(r.name for r in LOCAL_ROLES)]
        known = self.read()
        if all(name in known for name in wanted):
            return known
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path.parent.chmod(0o700)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            known = self.read()
            if all(name in known for name in wanted):
                return known
            for name in wanted:
                known.setdefault(name, secrets.token_urlsafe(24))
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(known, out, indent=2, sort_keys=True)
            os.chmod(tmp, 0o600)  # O_CREAT's mode is only for a new file
            os.replace(tmp, self.path)
        return known


def local_url(state_dir: Path, port: int, role: str = ADMIN, dbname: str = DATABASE) -> str:
    """``role``'s URL on the local cluster, with its password once the stack made one."""
    password = Passwords(state_dir).read().get(role)
    creds = role if password is None else f"{role}:{quote(password, safe='')}"
    return f"postgresql://{creds}@127.0.0.1:{port}/{dbname}"


def role_urls(state_dir: Path, port: int) -> dict[str, str]:
    """Kernel role -> its local URL (what ``kernel up`` exports)."""
    return {use: local_url(state_dir, port, r.name) for r in LOCAL_ROLES for use in r.uses}


def postgres_exports(settings: Settings) -> list[str]:
    """The shell exports that make a local deployment connect as its roles.

    ``POSTGRES_URL`` is the owner's (operators' commands: migrate, replay,
    backup, the DR drill), each process's ``KERNEL_DATABASE_URL_<ROLE>`` its
    own role's. With an external Postgres (POSTGRES_URL set), only that URL.
    """
    from ops.config import DATABASE_ROLE_VARS  # noqa: PLC0415

    if settings.postgres_url:
        return [f"export POSTGRES_URL={settings.postgres_url}"]
    urls = role_urls(settings.state_dir, settings.pg_port)
    lines = [f"export POSTGRES_URL={local_url(settings.state_dir, settings.pg_port, OWNER)}"]
    lines += [f"export {var}={urls[role]}" for role, var in DATABASE_ROLE_VARS.items()]
    return lines
