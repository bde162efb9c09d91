"""The doctor's pure checks: each failure names what is wrong and the command to run."""

from __future__ import annotations

from dataclasses import replace

from ops.doctor import Facts, Replica, check_lag, check_replication, diagnose, healthy
from ops.health import judge_lag
from ops.lag.monitor import GroupLag, LagSnapshot, PartitionLag
from ops.lag.status import Status
from schemas.topics import TOPICS, TopicNames

PREFIX = "k."
NAMES = TopicNames(PREFIX)
DECLARED = {NAMES.name(s.name): s.partitions for s in TOPICS}
CONFIGS = {NAMES.name(s.name): dict(s.config) for s in TOPICS}


def _healthy_facts() -> Facts:
    return Facts(
        bootstrap="b:9092",
        database_url="postgresql://x@h/db",
        prefix=PREFIX,
        brokers=1,
        topics=dict(DECLARED),
        topic_configs=CONFIGS,
        in_recovery=False,
        pending_migrations=(),
        lag=LagSnapshot(0.0, ()),
        dead_letters=0,
    )


def _group(name: str, status: Status, lag: int, lag_s: float) -> GroupLag:
    part = PartitionLag(name, "k.actions", 0, 0, lag, lag, lag, lag_s, "timestamp", status, "why")
    return GroupLag(name, status, (part,))


def _by_check(facts: Facts) -> dict[str, tuple[str, str, str]]:
    return {f.check: (f.status, f.detail, f.fix) for f in diagnose(facts)}


def test_healthy_facts_give_only_ok_findings() -> None:
    findings = diagnose(_healthy_facts())
    assert [f.check for f in findings] == [
        "kafka", "postgres", "replication", "migrations", "topics", "lag", "dead-letters",
    ]  # fmt: skip
    assert all(f.status == "ok" and not f.fix for f in findings)
    assert healthy(findings)


def test_pending_migrations_fail_with_the_migrate_command() -> None:
    facts = replace(_healthy_facts(), pending_migrations=("0100_audit_events",))
    status, detail, fix = _by_check(facts)["migrations"]
    assert status == "fail" and "0100_audit_events" in detail
    assert fix == "kernel db migrate"
    assert not healthy(diagnose(facts))


def test_missing_topics_fail_with_ensure_and_dlq_is_not_reported_twice() -> None:
    topics = {t: n for t, n in DECLARED.items() if t not in (NAMES.actions, NAMES.dlq)}
    facts = replace(_healthy_facts(), topics=topics, dead_letters=None)
    by = _by_check(facts)
    status, detail, fix = by["topics"]
    assert status == "fail" and NAMES.actions in detail and NAMES.dlq in detail
    assert fix == "kernel topics ensure"
    assert "dead-letters" not in by


def test_partition_and_config_drift_are_failures() -> None:
    configs = {**CONFIGS, NAMES.chain: {**CONFIGS[NAMES.chain], "retention.ms": "604800000"}}
    facts = replace(_healthy_facts(), topics={**DECLARED, NAMES.actions: 1}, topic_configs=configs)
    status, detail, _ = _by_check(facts)["topics"]
    assert status == "fail"
    assert f"{NAMES.actions} partitions: declared 3, broker 1" in detail
    assert f"{NAMES.chain} retention.ms: declared -1, broker 604800000" in detail


def test_kafka_down_is_one_cause_not_a_pile_of_errors() -> None:
    facts = replace(_healthy_facts(), kafka_error="transport failure", topics=None, lag=None)
    by = _by_check(facts)
    assert by["kafka"][0] == "fail" and "transport failure" in by["kafka"][1]
    for check in ("topics", "lag", "dead-letters"):
        assert by[check] == ("fail", "not checked: Kafka is down", "see `kafka`")
    assert by["postgres"][0] == "ok"


def test_postgres_down() -> None:
    facts = replace(
        _healthy_facts(), postgres_error="refused", pending_migrations=None, in_recovery=None
    )
    by = _by_check(facts)
    assert by["postgres"][0] == "fail" and "POSTGRES_URL" in by["postgres"][2]
    assert by["migrations"][1] == "not checked: Postgres is down"
    assert by["replication"][0] == "fail"


def test_replication_lag_over_limit_fails() -> None:
    slow = Replica("replica-b", "streaming", 10_000_000, 240.0)
    fast = Replica("replica-a", "streaming", 100, 0.2)
    facts = replace(_healthy_facts(), replicas=(fast, slow), max_replication_lag_s=60)
    finding = check_replication(facts)
    assert finding.status == "fail"
    assert "replica-b 240s" in finding.detail and "replica-a" not in finding.detail
    assert "pg_stat_replication" in finding.fix
    assert check_replication(replace(facts, replicas=(fast,))).status == "ok"


def test_standby_reports_its_role() -> None:
    facts = replace(
        _healthy_facts(), in_recovery=True, replicas=(Replica("this standby", "s", None, 1.0),)
    )
    finding = check_replication(facts)
    assert finding.status == "ok" and finding.detail.startswith("standby")


def test_lag_stall_and_age_fail_warn_does_not() -> None:
    stalled = LagSnapshot(0.0, (_group("k.signer", Status.STALL, 5, 10.0),))
    finding = check_lag(replace(_healthy_facts(), lag=stalled))
    assert finding.status == "fail" and "k.signer is STALL" in finding.detail
    assert finding.fix.startswith("kernel lag")

    old = LagSnapshot(0.0, (_group("k.proj", Status.OK, 5, 900.0),))
    finding = check_lag(replace(_healthy_facts(), lag=old, max_lag_s=300))
    assert finding.status == "fail" and "900s behind" in finding.detail

    slow = LagSnapshot(0.0, (_group("k.sentinel", Status.WARN, 5, 10.0),))
    finding = check_lag(replace(_healthy_facts(), lag=slow))
    assert finding.status == "warn"
    assert healthy(diagnose(replace(_healthy_facts(), lag=slow)))


def test_a_dead_or_never_started_group_names_the_worker_to_start() -> None:
    dead = LagSnapshot(
        0.0,
        (
            _group("k.chain-signer", Status.NO_MEMBER, 5, 10.0),
            _group("projection:audit", Status.NEVER_COMMITTED, 3, 40.0),
            _group("k.other", Status.OK, 0, 0.0),
        ),
    )
    finding = check_lag(replace(_healthy_facts(), lag=dead))
    assert finding.status == "fail"
    assert "k.chain-signer is NO_MEMBER" in finding.detail
    assert "projection:audit is NEVER_COMMITTED" in finding.detail
    assert finding.fix.startswith("kernel run audit-projector; kernel run signer   #")
    assert "nobody serves k.chain-signer, projection:audit" in finding.fix


def test_old_record_with_no_lag_is_not_behind() -> None:
    # lag_seconds may be interpolated from history even when caught up; no lag, no problem
    caught_up = LagSnapshot(0.0, (_group("k.proj", Status.OK, 0, 900.0),))
    assert judge_lag(caught_up, 300.0)[0] is True


def test_dead_letters_warn_with_the_tail_command() -> None:
    facts = replace(_healthy_facts(), dead_letters=4)
    status, detail, fix = _by_check(facts)["dead-letters"]
    assert status == "warn" and "4 record(s) in k.dlq" in detail
    assert fix.startswith("kernel tail dlq")
    assert healthy(diagnose(facts))
