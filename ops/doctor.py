"""``kernel doctor``: the runbook's health-check procedure, as checks over facts.

The procedure (docs/runbooks/health-check-failure.md) is, in order:

1. services -- Kafka answers broker metadata, Postgres accepts a connection;
2. the database -- WAL replication lag if there are replicas (or replay lag
   when this is a standby), migrations current;
3. the log -- declared topics present with their declared partitions and
   configuration (read-only: ``kernel topics ensure`` would create them),
   consumer lag of every watched group, dead letters waiting.

:func:`gather` does all the I/O once and returns :class:`Facts`; the checks
are pure functions ``Facts -> Finding`` (unit-tested without a stack), and
:func:`diagnose` runs them in runbook order. A fact that could not be
gathered because an earlier service is down is ``None``, and its check says
so instead of piling up a second error for the same cause.

Each :class:`Finding` says what is wrong and the exact command to run next.
``fail`` findings make the doctor exit 1; ``warn`` findings (dead letters
waiting, WARN/REWIND lag) are printed but do not.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ops.health import judge_lag
from ops.lag.monitor import LagMonitor, LagSnapshot
from ops.lag.status import Status
from schemas.errors import KernelError
from schemas.topics import TOPICS, TopicNames

if TYPE_CHECKING:
    from projections.postgres import Database
    from streams.kafka.offsets import KafkaOffsets

__all__ = [
    "CHECKS",
    "Facts",
    "Finding",
    "Replica",
    "diagnose",
    "gather",
    "healthy",
]

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Replica:
    """One row of ``pg_stat_replication`` (or the standby's own replay lag)."""

    name: str
    state: str
    lag_bytes: int | None
    lag_s: float | None


@dataclass(frozen=True)
class Facts:
    bootstrap: str
    database_url: str
    prefix: str
    kafka_error: str | None = None
    brokers: int = 0
    topics: Mapping[str, int] | None = None  # name -> partitions; None: Kafka down
    topic_configs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    postgres_error: str | None = None
    in_recovery: bool | None = None
    replicas: tuple[Replica, ...] = ()
    pending_migrations: tuple[str, ...] | None = None
    lag: LagSnapshot | None = None
    lag_error: str | None = None
    dead_letters: int | None = None
    max_lag_s: float = 300.0
    max_replication_lag_s: float = 60.0


@dataclass(frozen=True)
class Finding:
    check: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""  # the command (or action) to run next; empty when ok


# -- 1. services ---------------------------------------------------------------
def check_kafka(f: Facts) -> Finding:
    if f.kafka_error is not None:
        return Finding(
            "kafka",
            FAIL,
            f"Kafka at {f.bootstrap} did not answer: {f.kafka_error}",
            "kernel status   # local stack; elsewhere check the brokers and "
            "KERNEL_BOOTSTRAP_SERVERS",
        )
    return Finding("kafka", OK, f"broker metadata from {f.bootstrap} ({f.brokers} broker(s))")


def check_postgres(f: Facts) -> Finding:
    if f.postgres_error is not None:
        return Finding(
            "postgres",
            FAIL,
            f"Postgres did not answer: {f.postgres_error}",
            "kernel status   # local stack; elsewhere check the server and POSTGRES_URL",
        )
    return Finding("postgres", OK, "Postgres accepts connections")


# -- 2. the database ---------------------------------------------------------------
def check_replication(f: Facts) -> Finding:
    if f.postgres_error is not None:
        return Finding("replication", FAIL, "not checked: Postgres is down", "see `postgres`")
    behind = [r for r in f.replicas if r.lag_s is not None and r.lag_s > f.max_replication_lag_s]
    role = "standby" if f.in_recovery else "primary"
    if behind:
        names = ", ".join(f"{r.name} {r.lag_s:.0f}s ({r.state})" for r in behind)
        return Finding(
            "replication",
            FAIL,
            f"{role}: WAL replay more than {f.max_replication_lag_s:.0f}s behind: {names}",
            "check the replica's disk and network; "
            "SELECT * FROM pg_stat_replication on the primary",
        )
    if not f.replicas:
        return Finding("replication", OK, f"{role}, no replicas")
    lags = ", ".join(
        f"{r.name} {r.lag_s or 0:.1f}s/{r.lag_bytes if r.lag_bytes is not None else '?'}B"
        for r in f.replicas
    )
    return Finding("replication", OK, f"{role}, replay lag {lags}")


def check_migrations(f: Facts) -> Finding:
    if f.pending_migrations is None:
        return Finding("migrations", FAIL, "not checked: Postgres is down", "see `postgres`")
    if f.pending_migrations:
        return Finding(
            "migrations",
            FAIL,
            f"{len(f.pending_migrations)} migration(s) pending: " + ", ".join(f.pending_migrations),
            "kernel db migrate",
        )
    return Finding("migrations", OK, "migrations current")


# -- 3. the log ----------------------------------------------------------------------
def check_topics(f: Facts) -> Finding:
    if f.topics is None:
        return Finding("topics", FAIL, "not checked: Kafka is down", "see `kafka`")
    names = TopicNames(f.prefix)
    missing = [names.name(s.name) for s in TOPICS if names.name(s.name) not in f.topics]
    drift: list[str] = []
    for spec in TOPICS:
        topic = names.name(spec.name)
        if topic not in f.topics:
            continue
        if f.topics[topic] != spec.partitions:
            drift.append(
                f"{topic} partitions: declared {spec.partitions}, broker {f.topics[topic]}"
            )
        actual = f.topic_configs.get(topic)
        if actual is None:
            continue
        for key, want in spec.config.items():
            if actual.get(key) != want:
                drift.append(f"{topic} {key}: declared {want}, broker {actual.get(key)}")
    if missing:
        return Finding(
            "topics",
            FAIL,
            f"{len(missing)} topic(s) missing: {', '.join(missing)}",
            "kernel topics ensure",
        )
    if drift:
        return Finding(
            "topics",
            FAIL,
            "topics differ from schemas/topics.py: " + "; ".join(drift),
            "kernel topics ensure   # reports the drift; alter the topic (kafka-configs.sh) "
            "or change the declaration",
        )
    return Finding("topics", OK, f"{len(TOPICS)} declared topics present, no drift")


def check_lag(f: Facts) -> Finding:
    if f.lag is None:
        if f.kafka_error is not None:
            return Finding("lag", FAIL, "not checked: Kafka is down", "see `kafka`")
        return Finding("lag", FAIL, f"not checked: {f.lag_error}", "kernel lag")
    ok, detail = judge_lag(f.lag, f.max_lag_s)
    if not ok:
        dead = [
            g.group for g in f.lag.groups if g.status in (Status.NO_MEMBER, Status.NEVER_COMMITTED)
        ]
        if dead:
            from ops.lag.expected import worker_of  # noqa: PLC0415

            names = TopicNames(f.prefix)
            workers = sorted({worker_of(g, names) or "WORKER" for g in dead})
            start = "; ".join(f"kernel run {w}" for w in workers)
            return Finding("lag", FAIL, detail, f"{start}   # nobody serves {', '.join(dead)}")
        return Finding(
            "lag",
            FAIL,
            detail,
            "kernel lag --watch   # then restart the stuck worker: kernel run WORKER",
        )
    if any(g.status is not Status.OK for g in f.lag.groups):
        return Finding("lag", WARN, detail, "kernel lag --watch")
    return Finding("lag", OK, detail)


def check_dead_letters(f: Facts) -> Finding:
    if f.topics is None:
        return Finding("dead-letters", FAIL, "not checked: Kafka is down", "see `kafka`")
    if f.dead_letters is None:
        return Finding("dead-letters", FAIL, f"not checked: {f.lag_error}", "kernel tail dlq")
    if f.dead_letters:
        return Finding(
            "dead-letters",
            WARN,
            f"{f.dead_letters} record(s) in {f.prefix}dlq (kept 30 days)",
            "kernel tail dlq   # the reason is in each record; fix, then re-publish the source",
        )
    return Finding("dead-letters", OK, "dead-letter topic empty")


CHECKS: tuple[Callable[[Facts], Finding], ...] = (
    check_kafka,
    check_postgres,
    check_replication,
    check_migrations,
    check_topics,
    check_lag,
    check_dead_letters,
)


def diagnose(facts: Facts) -> list[Finding]:
    findings = [check(facts) for check in CHECKS]
    if facts.topics is not None and TopicNames(facts.prefix).dlq not in facts.topics:
        # A missing dlq is already a topics failure; do not report it twice.
        findings = [f for f in findings if f.check != "dead-letters"]
    return findings


def healthy(findings: list[Finding]) -> bool:
    return all(f.status != FAIL for f in findings)


# -- gathering (the only I/O) ------------------------------------------------------------
def gather(
    offsets: KafkaOffsets,
    db: Database,
    monitor: Callable[[], LagMonitor],
    names: TopicNames,
    *,
    lag_samples: int = 1,
) -> Facts:
    """Every fact the checks need, each failure recorded rather than raised.

    ``offsets`` reads Kafka (quiet: an unreachable broker is one finding, not a
    log line per reconnect), ``db`` is Postgres, ``monitor`` builds the lag monitor.
    """
    from ops.health import max_lag_seconds  # noqa: PLC0415

    facts = Facts(
        bootstrap=offsets.bootstrap,
        database_url=_redacted(db.url),
        prefix=names.prefix,
        max_lag_s=max_lag_seconds(),
    )
    facts = replace(facts, **_gather_kafka(offsets, names))
    facts = replace(facts, **_gather_postgres(db))
    if facts.kafka_error is None and facts.lag_error is None:
        try:
            lag = monitor()
            snapshot = lag.sample()
            for _ in range(max(0, lag_samples - 1)):
                time.sleep(lag.config.interval_s)
                snapshot = lag.sample()
            facts = replace(facts, lag=snapshot)
        except KernelError as exc:
            facts = replace(facts, lag_error=str(exc))
    return facts


def _gather_kafka(offsets: KafkaOffsets, names: TopicNames) -> dict[str, Any]:
    try:
        md = offsets.metadata()
    except KernelError as exc:
        return {"kafka_error": str(exc.__cause__ or exc)}
    topics = md.topics
    out: dict[str, Any] = {"brokers": md.brokers, "topics": topics}
    ours = [names.name(s.name) for s in TOPICS if names.name(s.name) in topics]
    try:
        out["topic_configs"] = offsets.topic_configs(ours)
        dlq = names.dlq
        if dlq in topics:
            parts = [(dlq, p) for p in range(topics[dlq])]
            ends = offsets.ends(parts)
            starts = offsets.starts(parts)
            out["dead_letters"] = sum(e.high_watermark for e in ends.values()) - sum(
                starts.values()
            )
    except KernelError as exc:
        return {**out, "lag_error": f"Kafka metadata answered but offsets did not: {exc}"}
    return out


def _gather_postgres(db: Database) -> dict[str, Any]:
    import psycopg  # noqa: PLC0415

    from projections.migrate import pending  # noqa: PLC0415

    try:
        with db.connect(autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            in_recovery = bool(row and row[0])
            replicas: tuple[Replica, ...]
            if in_recovery:
                lag = conn.execute(
                    "SELECT EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())"
                ).fetchone()
                seconds = None if lag is None or lag[0] is None else float(str(lag[0]))
                replicas = (Replica("this standby", "streaming", None, seconds),)
            else:
                rows = conn.execute(
                    "SELECT application_name, state,"
                    " pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn),"
                    " EXTRACT(EPOCH FROM replay_lag) FROM pg_stat_replication"
                ).fetchall()
                replicas = tuple(
                    Replica(
                        str(name),
                        str(state),
                        None if lag_b is None else int(str(lag_b)),
                        None if lag_s is None else float(str(lag_s)),
                    )
                    for name, state, lag_b, lag_s in rows
                )
            todo = pending(conn)
    except (KernelError, psycopg.Error) as exc:
        return {"postgres_error": str(exc)}
    return {
        "in_recovery": in_recovery,
        "replicas": replicas,
        "pending_migrations": tuple(f"{m.version:04d}_{m.name}" for m in todo),
    }


def _redacted(url: str) -> str:
    """The URL without a password, for printing."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    return f"{scheme}{sep}{creds.split(':', 1)[0]}@{host}"
