"""Least privilege on a real cluster: each role does exactly its part (migration 0300).

The database is owned by ``kernel_owner`` and migrated *by* it (not by the
superuser), and every role logs in over TCP with its own password, as a local
deployment does. Each role then runs every statement of the matrix: the ones
its process needs succeed, every other is refused by Postgres.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ops.bootstrap import Kernel
from ops.config import DATABASE_ROLE_VARS, Settings
from ops.stack import LocalStack
from ops.stack.postgres_roles import OWNER, local_url
from projections.migrate import migrate
from projections.sentinel_queries import explain, get_policy, list_simulations
from replay.audit_postgres import iter_rows
from replay.verify import ChainVerifier
from schemas.events import new_event
from streams.chain.keys import generate_key
from tests.integration.core.test_producer import _actions
from tests.integration.sentinel.test_stream_runner import DENY_BIG, actions, activate

PROJECTOR, SENTINEL, API, AUDITOR = (
    "kernel_projector",
    "kernel_sentinel_projector",
    "kernel_api",
    "kernel_auditor",
)
ROLES = (PROJECTOR, SENTINEL, API, AUDITOR)


@dataclass(frozen=True)
class OwnedDatabase:
    name: str
    settings: Settings

    def url(self, role: str) -> str:
        return local_url(self.settings.state_dir, self.settings.pg_port, role, self.name)


@pytest.fixture
def owned(stack: LocalStack, base_settings: Settings) -> Iterator[OwnedDatabase]:
    """A fresh database owned by kernel_owner and migrated by it."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(base_settings.database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(OWNER)
            )
        )
    db = OwnedDatabase(name, base_settings)
    try:
        migrate(db.url(OWNER))
        yield db
    finally:
        with psycopg.connect(base_settings.database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))  # fmt: skip


_EVENT = (
    "INSERT INTO audit_events (id, chain, seq, event_type, payload, prev_hash, hash, signature,"
    " signer_id, ts, source_topic, source_partition, source_offset) VALUES (gen_random_uuid(),"
    " 'c/0', {seq}, 'kernelAction', '{{}}', '', 'h', 's', 'k', now(), 'c', 0, {seq})"
)
_CHECKPOINT = (
    "INSERT INTO audit_checkpoints (chain, size, root_hash, head_hash, signer_id, note)"
    " VALUES ('c/0', {size}, 'r', 'h', 'k', 'n') ON CONFLICT (chain, size) DO NOTHING"
)
_POLICY = (
    "INSERT INTO policy_registry (policy_id, version, name, severity, state, definition,"
    " created_at, updated_at) VALUES ('p{n}', 1, 'p', 'LOW', 'draft', '{{}}', now(), now())"
    " ON CONFLICT (policy_id, version) DO UPDATE SET state = EXCLUDED.state,"
    " updated_at = EXCLUDED.updated_at"
)
_HISTORY = (
    "INSERT INTO policy_history (policy_id, seq, version, change, to_state, actor, ts)"
    " VALUES ('p0', {n}, 1, 'created', 'draft', 'a', now())"
)
_CHECK = (
    "INSERT INTO policy_checks (policy_check_id, event_id, decision, allowed, rationale, evidence,"
    " evaluations, sim_mode, mode, subject, ts, source_topic, source_partition, source_offset)"
    " VALUES (gen_random_uuid(), gen_random_uuid(), 'allow', true, 'r', '{{}}', '[]', false,"
    " 'stream', 's', now(), 't', 0, {n}) ON CONFLICT (policy_check_id) DO NOTHING"
)
_REJECTION = (
    "INSERT INTO policy_change_rejections (event_id, reason, ts, source_topic, source_partition,"
    " source_offset) VALUES (gen_random_uuid(), 'r', now(), 't', 0, {n}) ON CONFLICT DO NOTHING"
)
_SIMULATION = (
    "INSERT INTO policy_simulations (simulation_id, event_id, policy_id, version, actor, ts,"
    " actions_topic, sim_window, ranges, active_set, report, source_topic, source_partition,"
    " source_offset) VALUES (gen_random_uuid(), gen_random_uuid(), 'p', 1, 'a', now(), 't',"
    " '{{}}', '{{}}', '[]', '{{}}', 't', 0, {n}) ON CONFLICT (simulation_id) DO NOTHING"
)
_MOVE = (
    "UPDATE projection_checkpoints SET next_offset = next_offset + 1, updated_at = now()"
    " WHERE projection = '{p}'"
)
_ADD = (
    "INSERT INTO projection_checkpoints (projection, topic, partition, next_offset)"
    " VALUES ('{p}', 'new', 0, 1) ON CONFLICT (projection, topic, partition) DO NOTHING"
)
_READ = "SELECT topic, partition, next_offset FROM projection_checkpoints WHERE projection = '{p}'"

# statement -> the roles that may run it (the owner's own rights are tested apart)
MATRIX: dict[str, set[str]] = {
    _EVENT.format(seq=100): {PROJECTOR},
    "SELECT * FROM audit_events": {API, AUDITOR},
    "UPDATE audit_events SET signer_id = 'x'": set(),
    "DELETE FROM audit_events": set(),
    "TRUNCATE audit_events": set(),
    _CHECKPOINT.format(size=100): {PROJECTOR},
    "SELECT * FROM audit_checkpoints": {API, AUDITOR},
    "UPDATE audit_checkpoints SET note = 'x'": set(),
    "DELETE FROM audit_checkpoints": set(),
    "TRUNCATE audit_checkpoints": set(),
    _POLICY.format(n=100): {SENTINEL},
    "SELECT * FROM policy_registry": {SENTINEL, API},
    "UPDATE policy_registry SET name = 'x'": set(),  # only the state columns, by upsert
    "DELETE FROM policy_registry": set(),
    "TRUNCATE policy_registry": set(),
    _HISTORY.format(n=100): {SENTINEL},
    "SELECT * FROM policy_history": {SENTINEL, API},
    "UPDATE policy_history SET actor = 'x'": set(),
    "DELETE FROM policy_history": set(),
    _CHECK.format(n=100): {SENTINEL},
    "SELECT * FROM policy_checks": {SENTINEL, API},
    "UPDATE policy_checks SET decision = 'deny'": set(),
    "DELETE FROM policy_checks": set(),
    "TRUNCATE policy_checks": set(),
    _REJECTION.format(n=100): {SENTINEL},
    "SELECT * FROM policy_change_rejections": {API},
    "DELETE FROM policy_change_rejections": set(),
    _SIMULATION.format(n=100): {SENTINEL},
    "SELECT * FROM policy_simulations": {API},
    "UPDATE policy_simulations SET actor = 'x'": set(),
    "DELETE FROM policy_simulations": set(),
    "TRUNCATE policy_simulations": set(),
    _MOVE.format(p="audit"): {PROJECTOR},
    _MOVE.format(p="policy_checks"): {SENTINEL},
    _ADD.format(p="audit"): {PROJECTOR},
    _ADD.format(p="policy_registry"): {SENTINEL},
    _READ.format(p="audit"): {PROJECTOR, SENTINEL, API},  # RLS: the sentinel sees no row
    "UPDATE projection_checkpoints SET projection = 'audit'": set(),
    "DELETE FROM projection_checkpoints": set(),
    "TRUNCATE projection_checkpoints": set(),
    "SELECT * FROM schema_migrations": {API},
    "DELETE FROM schema_migrations": set(),
    "CREATE TABLE mine (x int)": set(),
}


def _seed(db: OwnedDatabase) -> None:
    """One row in every table, written as the owner, for the statements to act on."""
    with psycopg.connect(db.url(OWNER), autocommit=True) as conn:
        for n in range(2):
            conn.execute(_EVENT.format(seq=n).encode())
            conn.execute(_CHECKPOINT.format(size=n).encode())
            conn.execute(_POLICY.format(n=n).encode())
            conn.execute(_HISTORY.format(n=n).encode())
            conn.execute(_CHECK.format(n=n).encode())
            conn.execute(_REJECTION.format(n=n).encode())
            conn.execute(_SIMULATION.format(n=n).encode())
        for p in ("audit", "policy_registry", "policy_checks", "other"):
            conn.execute(
                "INSERT INTO projection_checkpoints (projection, topic, partition, next_offset)"
                " VALUES (%s, 't', 0, 10)",
                (p,),
            )


def _runs(conn: psycopg.Connection[tuple[object, ...]], statement: str) -> bool:
    """True if ``statement`` ran (rolled back after), False if Postgres refused it."""
    try:
        cur = conn.execute(statement.encode())
        return bool(cur.rowcount) if statement.startswith(("UPDATE", "DELETE")) else True
    except psycopg.errors.InsufficientPrivilege:
        return False
    finally:
        conn.rollback()


def test_each_role_runs_exactly_its_statements(owned: OwnedDatabase) -> None:
    _seed(owned)
    wrong = []
    for role in ROLES:
        with psycopg.connect(owned.url(role)) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (role,)
            for statement, allowed in MATRIX.items():
                if _runs(conn, statement) != (role in allowed):
                    wrong.append(f"{role}: {statement} {'refused' if role in allowed else 'ran'}")
    assert not wrong, "\n".join(wrong)


def test_a_projector_sees_and_moves_only_its_own_positions(owned: OwnedDatabase) -> None:
    _seed(owned)
    with psycopg.connect(owned.url(PROJECTOR)) as conn:
        rows = conn.execute("SELECT projection FROM projection_checkpoints").fetchall()
        assert rows == [("audit",)]
        moved = conn.execute("UPDATE projection_checkpoints SET next_offset = 99").rowcount
        assert moved == 1
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(_ADD.format(p="policy_checks"))
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="move back"):
            conn.execute("UPDATE projection_checkpoints SET next_offset = 9")
        conn.rollback()
    with psycopg.connect(owned.url(SENTINEL)) as conn:
        rows = conn.execute("SELECT projection FROM projection_checkpoints ORDER BY 1").fetchall()
        assert rows == [("policy_checks",), ("policy_registry",)]


APPEND_ONLY = {
    "audit_events": "signer_id = signer_id",
    "audit_checkpoints": "note = note",
    "policy_history": "actor = actor",
    "policy_checks": "decision = decision",
    "policy_change_rejections": "reason = reason",
    "policy_simulations": "actor = actor",
}


def test_append_only_tables_refuse_the_owner(owned: OwnedDatabase) -> None:
    _seed(owned)
    with psycopg.connect(owned.url(OWNER), autocommit=True) as conn:
        for table, noop in APPEND_ONLY.items():
            for statement in (f"UPDATE {table} SET {noop}", f"DELETE FROM {table}",
                              f"TRUNCATE {table}"):  # fmt: skip
                with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                    conn.execute(statement.encode())
        (rows,) = conn.execute("SELECT count(*) FROM audit_events").fetchone() or (0,)
    assert rows == 2


def test_the_local_cluster_wants_a_password(stack: LocalStack, base_settings: Settings) -> None:
    hba = (stack.postgres.data / "pg_hba.conf").read_text()
    assert "trust" not in hba and "scram-sha-256" in hba
    url = base_settings.database_url
    for wrong in (url.replace(url.split("@")[0].split(":")[-1], "nope"),
                  local_url(Path("/nonexistent"), base_settings.pg_port)):  # fmt: skip
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(wrong).close()


def test_checkpoint_positions_are_never_removed_and_only_the_owner_rewinds(
    owned: OwnedDatabase,
) -> None:
    _seed(owned)
    with psycopg.connect(owned.url(OWNER), autocommit=True) as conn:
        for statement in (
            "DELETE FROM projection_checkpoints",
            "TRUNCATE projection_checkpoints",
            "UPDATE projection_checkpoints SET partition = 1",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="checkpoints"):
                conn.execute(statement.encode())
        # a replay's swap: the rebuilt table stands earlier than the live one did
        moved = conn.execute(
            "UPDATE projection_checkpoints SET next_offset = 3 WHERE projection = 'audit'"
        ).rowcount
        assert moved == 1


@pytest.fixture
def role_kernel(owned: OwnedDatabase, kernel: Kernel, tmp_path: Path) -> Iterator[Kernel]:
    """A Kernel whose every process role logs in as itself (POSTGRES_URL names no role)."""
    settings = replace(
        kernel.settings,
        postgres_url=owned.url("nobody"),  # nothing may fall back to it
        signing_key=generate_key(tmp_path / "keys", "role-signer"),
        signer_id="role-signer",
        checkpoint_every=5,
        state_dir=tmp_path,
        role_database_urls={
            "audit_projector": owned.url(PROJECTOR),
            "sentinel_projector": owned.url(SENTINEL),
            "auditor": owned.url(AUDITOR),
            "api": owned.url(API),
        },
    )
    k = Kernel(settings)
    yield k
    k.close()


def test_the_audit_projector_projects_as_its_own_role_end_to_end(
    role_kernel: Kernel, owned: OwnedDatabase
) -> None:
    """Signer, checkpointer, then the audit projector logged in as kernel_projector; the
    auditor and the API read the result as theirs."""
    k = role_kernel
    k.producer().publish_batch(_actions(12, "acct-r"))
    signer, checkpointer, projector = k.chain_signer(), k.checkpointer(), k.audit_projector()
    try:
        assert signer.run_until_idle(idle_s=1.0) == 12
        checkpointer.run_until_idle(idle_s=1.0)
        assert projector.run_until_idle(idle_s=1.0) >= 12
    finally:
        signer.close()
        checkpointer.close()
        projector.close()
    assert k.database("audit_projector").url == owned.url(PROJECTOR)

    with k.database("auditor").connect() as conn:
        assert conn.execute("SELECT current_user").fetchone() == (AUDITOR,)
        report = ChainVerifier(k.verifiers()).feed_all(iter_rows(conn))
    assert report.ok and report.total == 12, report.to_json()
    with k.database("api").connection() as conn:
        assert conn.execute("SELECT current_user").fetchone() == (API,)
        sizes = conn.execute("SELECT size FROM audit_checkpoints ORDER BY size").fetchall()
        (position,) = conn.execute(
            "SELECT sum(next_offset) FROM projection_checkpoints WHERE projection = 'audit'"
        ).fetchone() or (None,)
    assert sizes and all(s % 5 == 0 for (s,) in sizes)
    assert position is not None and position > 0


def test_the_sentinel_projector_projects_as_its_own_role_end_to_end(role_kernel: Kernel) -> None:
    """Registry (folded from its own table) and explain table (a staging table LIKE
    policy_checks), written as kernel_sentinel_projector, twice: nothing twice."""
    k = role_kernel
    producer = k.producer()
    producer.publish_batch(activate(DENY_BIG))
    simulated = new_event("policySimulation", "alice", "deny-big", {
        "simulationId": str(uuid.uuid4()), "policyId": "deny-big", "version": 1,
        "actionsTopic": k.names.actions, "window": {"kind": "last", "last": 6},
        "ranges": {"0": [0, 6]}, "activeSet": [], "report": {"eventsEvaluated": 6},
    })  # fmt: skip
    producer.publish(simulated)
    runner = k.sentinel()
    try:
        runner.run_until_idle(idle_s=0.5)
        producer.publish_batch(actions(6, random.Random(7)))
        runner.run_until_idle(idle_s=0.5)
    finally:
        runner.close()
    for _ in range(2):
        for projector in k.sentinel_projectors():
            projector.run_until_idle(idle_s=0.5)
            projector.close()
    with k.database("api").connection() as conn:
        policy = get_policy(conn, "deny-big")
        checks = conn.execute("SELECT policy_check_id::text FROM policy_checks").fetchall()
        explained = explain(conn, checks[0][0]) if checks else None
        simulations = list_simulations(conn)
        positions = conn.execute(
            "SELECT projection, sum(next_offset) FROM projection_checkpoints GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert policy is not None and [v["state"] for v in policy["versions"]] == ["active"]
    assert len(checks) == 6
    assert explained is not None and explained["evaluations"][0]["policyId"] == "deny-big"
    assert [p for p, _ in positions] == ["policy_checks", "policy_registry"]
    assert [(x["eventId"], x["eventsEvaluated"]) for x in simulations] == [(simulated.event_id, 6)]


def test_the_dr_drill_runs_as_the_owner_with_each_projector_as_its_role(
    role_kernel: Kernel, owned: OwnedDatabase, tmp_path: Path
) -> None:
    """An operator's command as the owner (no superuser): drop the database, recreate it,
    migrate, rebuild from the log with each projector logged in as its role, equal."""
    from streams.chain.keys import load_signer, signers_document
    from tests.e2e.conftest import make_cli
    from tests.integration.audit.test_dr_drill import _deploy

    k = Kernel(replace(role_kernel.settings, postgres_url=owned.url(OWNER)))
    _, links = _deploy(k)
    signer = load_signer(k.settings.signing_key)  # type: ignore[arg-type]
    signers = tmp_path / "signers.json"
    signers.write_text(json.dumps(signers_document([(signer.signer_id, signer.public_key)])))
    roles = {DATABASE_ROLE_VARS[r]: url for r, url in k.settings.role_database_urls.items()}
    done = make_cli(k.settings)(
        "dr-drill", "--signers", str(signers), "--yes", "--json", extra_env=roles
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["identical"], report["differences"]
    assert report["tables"]["audit_events"]["rows"] == links
    with psycopg.connect(owned.url(OWNER)) as conn:
        owners = conn.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    assert owners == [(OWNER,)]
    k.close()
