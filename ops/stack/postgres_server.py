"""A private PostgreSQL cluster (Debian's packages) under ``<state>/postgres``.

Postgres refuses to run as root, so when Kernel runs as root the cluster's
files belong to, and its processes run as, the ``postgres`` system user that
Debian's package creates. It listens on 127.0.0.1 only.

Authentication (``pg_hba.conf``, rewritten on every start): TCP needs a
password (``scram-sha-256``); the passwords are generated once and kept in the
state dir (:mod:`ops.stack.postgres_roles`). The one other door is the Unix
socket in the data directory, with ``peer`` authentication mapped to the
``kernel`` superuser for the OS user who runs Kernel (and the cluster's own
account): the stack uses it to create the database, the roles and their
passwords, which it cannot do over TCP before they exist.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ops.stack.errors import MissingToolError, StackError
from ops.stack.postgres_roles import ADMIN, DATABASE, LOCAL_ROLES, OWNER, Passwords
from ops.stack.processes import port_open, wait_until

__all__ = ["PostgresServer", "postgres_bindir"]

_HINT = "install PostgreSQL server binaries, e.g. `apt-get install postgresql`"


def postgres_bindir() -> Path:
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False)
        cand = Path(out.stdout.strip())
        if (cand / "initdb").exists():
            return cand
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts[-3])
    versions = sorted(versions, key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if versions:
        return versions[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    raise MissingToolError(f"PostgreSQL's initdb was not found: {_HINT}")


@dataclass
class PostgresServer:
    state_dir: Path
    port: int
    durable: bool = True

    @property
    def home(self) -> Path:
        return self.state_dir / "postgres"

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "postgres.log"

    @property
    def url(self) -> str:
        """The address, for display: no password (Settings.database_url carries it)."""
        return f"postgresql://{ADMIN}@127.0.0.1:{self.port}/{DATABASE}"

    def _as_owner(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        return ["runuser", "-u", "postgres", "--", *argv]

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._as_owner(argv), capture_output=True, text=True, check=False)

    def running(self) -> bool:
        if not (self.data / "PG_VERSION").exists():
            return False
        status = self._run([str(postgres_bindir() / "pg_ctl"), "-D", str(self.data), "status"])
        return status.returncode == 0 and port_open("127.0.0.1", self.port)

    def _prepare_dirs(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise MissingToolError(f"no 'postgres' system user: {_HINT}") from exc
            # The postgres user must be able to reach its directory.
            for parent in [self.home, *self.home.parents]:
                if parent == Path("/"):
                    break
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    parent.chmod(mode | 0o001)
            os.chown(self.home, owner.pw_uid, owner.pw_gid)

    def start(self, timeout_s: float = 60.0) -> bool:
        """Start unless running; returns False when an existing cluster was reused.

        Either way the authentication, the roles and their passwords and the
        ``kernel`` database are made what this stack says (idempotent).
        """
        if self.running():
            if self._write_auth():
                self._reload()
            self._ensure_roles_and_database()
            return False
        if port_open("127.0.0.1", self.port):
            raise StackError(
                f"port {self.port} is taken by a process that is not this stack's Postgres; "
                "set KERNEL_PG_PORT to a free port or POSTGRES_URL to use that server"
            )
        bindir = postgres_bindir()
        self._prepare_dirs()
        if not (self.data / "PG_VERSION").exists():
            init = self._run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "kernel",
                    "--auth-local=peer",  # replaced by _write_auth before the first start
                    "--auth-host=reject",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            )
            if init.returncode != 0:
                raise StackError(f"initdb failed:\n{init.stdout}{init.stderr}")
        self._write_auth()  # before the server first listens: never trust
        opts = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        start = self._run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log_file),
                "-o",
                opts,
                "-w",
                "-t",
                str(int(timeout_s)),
                "start",
            ]
        )
        if start.returncode != 0:
            tail = (
                self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            )
            raise StackError(f"Postgres did not start:\n{start.stdout}{start.stderr}\n{tail}")
        wait_until(lambda: port_open("127.0.0.1", self.port), timeout_s, "Postgres", self.log_file)
        self._ensure_roles_and_database()
        return True

    # -- authentication ------------------------------------------------------------
    def _cluster_owner(self) -> tuple[int, int] | None:
        """(uid, gid) the cluster's files belong to when Kernel runs as root."""
        if os.geteuid() != 0:
            return None
        owner = pwd.getpwnam("postgres")
        return owner.pw_uid, owner.pw_gid

    def _write_auth(self) -> bool:
        """Write pg_hba.conf and pg_ident.conf; True if either changed."""
        me = pwd.getpwuid(os.geteuid()).pw_name
        local_users = sorted({me, "postgres"} if os.geteuid() == 0 else {me})
        files = {
            "pg_hba.conf": (
                "# Written by Kernel's local stack on every start (ops/stack/postgres_server.py).\n"
                "# TYPE DATABASE USER    ADDRESS       METHOD\n"
                f"local  all      {ADMIN:<7} peer map=kernel\n"
                "host   all      all     127.0.0.1/32  scram-sha-256\n"
            ),
            "pg_ident.conf": (
                "# Written by Kernel's local stack: who may use the socket as the superuser.\n"
                + "".join(f"kernel {user} {ADMIN}\n" for user in local_users)
            ),
        }
        changed = False
        owner = self._cluster_owner()
        for name, text in files.items():
            path = self.data / name
            if path.exists() and path.read_text() == text:
                continue
            path.write_text(text)
            path.chmod(0o600)
            if owner is not None:
                os.chown(path, *owner)
            changed = True
        return changed

    def _reload(self) -> None:
        done = self._run([str(postgres_bindir() / "pg_ctl"), "-D", str(self.data), "reload"])
        if done.returncode != 0:
            raise StackError(f"pg_ctl reload failed: {done.stderr}")

    def admin_conninfo(self, dbname: str = "postgres") -> str:
        """The superuser over the Unix socket (peer authentication)."""
        from psycopg.conninfo import make_conninfo  # noqa: PLC0415

        return make_conninfo(host=str(self.data), port=self.port, user=ADMIN, dbname=dbname)

    def _ensure_roles_and_database(self) -> None:
        """Roles with LOGIN and their passwords, the ``kernel`` database owned by the owner.

        Serialised by an advisory lock: test workers reuse one cluster at once.
        Passwords go over the wire as SCRAM verifiers, never as text.
        """
        import psycopg  # noqa: PLC0415
        from psycopg import sql  # noqa: PLC0415

        from projections.postgres import open_connection  # noqa: PLC0415

        passwords = Passwords(self.state_dir).ensure()
        try:
            with open_connection(self.admin_conninfo(), autocommit=True) as conn:
                conn.execute("SELECT pg_advisory_lock(7346221020)")
                roles = [(ADMIN, ""), *((r.name, r.attributes) for r in LOCAL_ROLES)]
                for name, attributes in roles:
                    exists = conn.execute(
                        "SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)
                    ).fetchone()
                    verb = "ALTER" if exists else "CREATE"
                    verifier = conn.pgconn.encrypt_password(
                        passwords[name].encode(), name.encode(), b"scram-sha-256"
                    ).decode()
                    conn.execute(
                        sql.SQL("{} ROLE {} LOGIN {} PASSWORD {}").format(
                            sql.SQL(verb),
                            sql.Identifier(name),
                            sql.SQL(attributes),
                            sql.Literal(verifier),
                        )
                    )
                row = conn.execute(
                    "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                    (DATABASE,),
                ).fetchone()
                if row is None:
                    conn.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(
                            sql.Identifier(DATABASE), sql.Identifier(OWNER)
                        )
                    )
                elif row[0] != OWNER:
                    conn.execute(
                        sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                            sql.Identifier(DATABASE), sql.Identifier(OWNER)
                        )
                    )
            with open_connection(self.admin_conninfo(DATABASE), autocommit=True) as conn:
                conn.execute(_OWNERSHIP.encode())
        except psycopg.Error as exc:
            raise StackError(f"could not set up the roles and database of Postgres: {exc}") from exc

    def stop(self) -> bool:
        if not (self.data / "PG_VERSION").exists() or not self.running():
            return False
        done = self._run(
            [str(postgres_bindir() / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]
        )
        if done.returncode != 0:
            raise StackError(f"pg_ctl stop failed: {done.stderr}")
        return True


# Objects the superuser created in the ``kernel`` database (migrations it ran, a
# cluster from before the owner role) pass to the owner, so that the owner can
# run every later migration.
_OWNERSHIP = f"""
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT n.nspname FROM pg_namespace n
             WHERE n.nspowner = '{ADMIN}'::regrole
               AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
    LOOP
        EXECUTE format('ALTER SCHEMA %I OWNER TO {OWNER}', r.nspname);
    END LOOP;
    FOR r IN SELECT c.oid::regclass AS rel FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relowner = '{ADMIN}'::regrole AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
               AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
    LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO {OWNER}', r.rel);
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS fn FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE p.proowner = '{ADMIN}'::regrole
               AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO {OWNER}', r.fn);
    END LOOP;
END;
$$;
"""
