"""A private PostgreSQL cluster (Debian's packages) under ``<state>/postgres``.

Postgres refuses to run as root, so when Kernel runs as root the cluster's
files belong to, and its processes run as, the ``postgres`` system user that
Debian's package creates. Authentication is ``trust`` on 127.0.0.1 only: this is
a development cluster; set POSTGRES_URL to use a real one.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ops.stack.errors import MissingToolError, StackError
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
        return f"postgresql://kernel@127.0.0.1:{self.port}/kernel"

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
        """Start unless running; returns False when an existing cluster was reused."""
        if self.running():
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
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            )
            if init.returncode != 0:
                raise StackError(f"initdb failed:\n{init.stdout}{init.stderr}")
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
        self._ensure_database()
        return True

    def _ensure_database(self) -> None:
        psql = str(postgres_bindir() / "psql")
        base = [psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "kernel", "-d", "postgres"]
        exists = subprocess.run(
            [*base, "-tAc", "SELECT 1 FROM pg_database WHERE datname='kernel'"],
            capture_output=True,
            text=True,
            check=False,
        )
        if exists.stdout.strip() != "1":
            made = subprocess.run(
                [*base, "-c", "CREATE DATABASE kernel"], capture_output=True, text=True, check=False
            )
            if made.returncode != 0:
                raise StackError(f"could not create database 'kernel': {made.stderr}")

    def stop(self) -> bool:
        if not (self.data / "PG_VERSION").exists() or not self.running():
            return False
        done = self._run(
            [str(postgres_bindir() / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]
        )
        if done.returncode != 0:
            raise StackError(f"pg_ctl stop failed: {done.stderr}")
        return True
