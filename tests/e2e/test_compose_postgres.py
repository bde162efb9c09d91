"""compose.yaml's Postgres, without Docker: the roles script on a bare cluster.

Docker cannot run here, so the part of compose.yaml that is ours is run as the
``postgres`` image would run it: a fresh cluster initialised with its options
(``--auth-host=scram-sha-256``, trust on the socket), the ``kernel`` database,
then ``ops/compose/postgres-roles.sh`` as an initdb script. Then the migrations
run as the owner over TCP with a password, and each service's login can do its
part and no more.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ops.stack.postgres_server import postgres_bindir
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
ROLES = {
    "OWNER": "kernel_owner",
    "API": "kernel_api",
    "PROJECTOR": "kernel_projector",
    "SENTINEL_PROJECTOR": "kernel_sentinel_projector",
    "AUDITOR": "kernel_auditor",
}


def _as_cluster_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


class BareCluster:
    def __init__(self) -> None:
        self.home = Path(f"/var/tmp/kernel-compose-pg-{uuid.uuid4().hex[:12]}")
        self.data = self.home / "data"
        self.port = free_port()

    def start(self) -> None:
        self.home.mkdir(parents=True)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.home, owner.pw_uid, owner.pw_gid)
        bindir = postgres_bindir()
        initdb = [str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres"]
        initdb += ["--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8"]
        subprocess.run(_as_cluster_owner(initdb), check=True, capture_output=True)
        opts = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.home / "postgres.log")  # not our pipe: the server would hold it open
        start = [str(bindir / "pg_ctl"), "-D", str(self.data), "-l", log, "-o", opts, "-w", "start"]
        subprocess.run(_as_cluster_owner(start), check=True, capture_output=True)

    def stop(self) -> None:
        stop = [str(postgres_bindir() / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]
        subprocess.run(_as_cluster_owner(stop), check=False, capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)

    def url(self, role: str, password: str) -> str:
        return f"postgresql://{role}:{password}@127.0.0.1:{self.port}/kernel"


@pytest.fixture(scope="module")
def cluster() -> Iterator[BareCluster]:
    found = BareCluster()
    try:
        found.start()
        yield found
    finally:
        found.stop()


def test_compose_roles_script_gives_each_service_exactly_its_part(cluster: BareCluster) -> None:
    passwords = {var: secrets.token_urlsafe(18) for var in ROLES}
    env = dict(os.environ, PGHOST=str(cluster.data), PGPORT=str(cluster.port))
    psql = str(postgres_bindir() / "psql")
    subprocess.run(
        [psql, "-U", "postgres", "-d", "postgres", "-c", "CREATE DATABASE kernel"],
        env=env,
        check=True,
        capture_output=True,
    )
    env.update(POSTGRES_USER="postgres", POSTGRES_DB="kernel", PATH=f"{psql[:-5]}:{env['PATH']}")
    env.update({f"KERNEL_PG_{var}_PASSWORD": pw for var, pw in passwords.items()})
    script = ROOT / "ops" / "compose" / "postgres-roles.sh"
    done = subprocess.run(["sh", str(script)], check=False, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for pw in passwords.values():  # passed as psql variables: never echoed
        assert pw not in done.stdout + done.stderr

    owner = cluster.url("kernel_owner", passwords["OWNER"])
    kernel = Path(sys.executable).with_name("kernel")
    migrate = subprocess.run(
        [str(kernel), "db", "migrate"],
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith(("KERNEL_", "POSTGRES"))}
        | {"POSTGRES_URL": owner, "KERNEL_STATE_DIR": str(cluster.home / "state")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr

    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(cluster.url("kernel_owner", "wrong")).close()

    def can(var: str, sql: str) -> bool:
        with psycopg.connect(cluster.url(ROLES[var], passwords[var]), autocommit=True) as conn:
            try:
                conn.execute(sql)
            except psycopg.errors.InsufficientPrivilege:
                return False
            return True

    assert can("API", "SELECT count(*) FROM audit_events")
    assert can("API", "SELECT count(*) FROM policy_checks")
    assert not can("API", "DELETE FROM policy_registry")
    assert not can("API", "CREATE TABLE sneaky (x int)")
    assert can("AUDITOR", "SELECT count(*) FROM audit_checkpoints")
    assert not can("AUDITOR", "SELECT count(*) FROM policy_checks")
    assert not can("PROJECTOR", "SELECT * FROM policy_checks")
    assert not can("SENTINEL_PROJECTOR", "SELECT * FROM audit_events")
    with psycopg.connect(owner) as conn:
        superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        assert superuser.fetchone() == (False,)
        owns = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'kernel'"
        )
        assert owns.fetchone() == ("kernel_owner",)
