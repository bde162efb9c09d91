"""The metrics every Kernel service exports, defined once (prometheus-client).

Import the object you need (``from ops.metrics import DECISIONS``) and update
it; ``/metrics`` of each service serves the default registry. The dashboard
(``ops/grafana/kernel.json``) and the alert rules (``ops/prometheus/alerts.yml``)
use exactly these names; a unit test keeps them in step.

Label cardinality is bounded on purpose: labels carry processors, policies,
topics, partitions, groups and small fixed vocabularies (outcomes, reasons,
gates) -- never event ids, actors, request ids or free-text messages. A
``reason`` label is a short category (``schema``, ``validation``, ``timeout``),
the message goes to the log.

Time-since metrics are exported as the timestamp of the last event
(``*_timestamp_seconds``) and turned into an age in PromQL with ``time() - x``:
a stored age would be stale the moment it is scraped.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

__all__ = [
    "ACCESS_DENIED",
    "ACCESS_DENIED_UNRECORDED",
    "ALL_METRICS",
    "AUDIT_VERIFICATIONS",
    "BATCH_SIZE",
    "CANARY_GATE_VALUE",
    "CANARY_PROMOTIONS",
    "CANARY_ROLLBACKS",
    "CANARY_VERDICTS",
    "CANARY_WINDOW_OBSERVATIONS",
    "CHAIN_CHECKPOINT_TIMESTAMP",
    "CHAIN_HEAD_TIMESTAMP",
    "CHAIN_LENGTH",
    "CONSUMER_COMMITTED_OFFSET",
    "CONSUMER_GROUP_MEMBERS",
    "CONSUMER_GROUP_STATUS",
    "CONSUMER_LAG_OFFSETS",
    "CONSUMER_LAG_SECONDS",
    "CONSUMER_LAG_STATUS",
    "DEAD_LETTERS",
    "DECISIONS",
    "DECISION_ERRORS",
    "EVENTS_FAILED",
    "EVENTS_PROCESSED",
    "LAG_SAMPLE_DURATION",
    "LOG_END_OFFSET",
    "PROJECTION_CHECKPOINT_TIMESTAMP",
    "REMEDIATION_CALLS",
    "REMEDIATION_STEPS",
    "SYNC_CHECK_DURATION",
    "TRANSACTIONS",
    "WORKER_HEARTBEAT_TIMESTAMP",
    "exposed_names",
]

# -- SentinelNet ---------------------------------------------------------------
SYNC_CHECK_DURATION = Histogram(
    "kernel_sync_check_duration_seconds",
    "Latency of POST /sentinel/check, request in to durable decision out. "
    "result: decided | fallback (budget exceeded) | error (log unavailable: deny).",
    ["result"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5),
)
DECISIONS = Counter(
    "kernel_decisions",
    "Decisions made. outcome: allow | deny | quarantine | remediate | escalate; "
    "policy: the winning policy id ('none' when no policy matched); "
    "mode: enforced | simulated | canary.",
    ["outcome", "policy", "mode"],
)
DECISION_ERRORS = Counter(
    "kernel_decision_errors",
    "Policy evaluations that failed and were decided by the fail-closed fallback. "
    "reason: evaluation | timeout | log_unavailable | invalid_input.",
    ["policy", "reason"],
)
# -- canary gates (issue 12.2): set by the rollout worker (ops/workers/rollout.py)
CANARY_GATE_VALUE = Gauge(
    "kernel_canary_gate_value",
    "A canary's gate value over its last judged window. gate: disagreement | "
    "deny_rate_change | error_rate | p99_latency | fallbacks.",
    ["policy", "gate"],
)
CANARY_WINDOW_OBSERVATIONS = Gauge(
    "kernel_canary_window_observations",
    "Observations in a canary's last judged window (below its minSample: inconclusive).",
    ["policy"],
)
CANARY_VERDICTS = Counter(
    "kernel_canary_verdicts",
    "Judged windows of a canary. outcome: pass | fail | inconclusive.",
    ["policy", "outcome"],
)
CANARY_ROLLBACKS = Counter(
    "kernel_canary_rollbacks",
    "Canaries rolled back by their gates, by the first failing gate.",
    ["policy", "gate"],
)
CANARY_PROMOTIONS = Counter(
    "kernel_canary_promotions",
    "Canaries promoted to active by their gates (LOW and MEDIUM policies).",
    ["policy"],
)
# -- remediation (issue 12.4)
REMEDIATION_STEPS = Counter(
    "kernel_remediation_steps",
    "Remediation steps the worker wrote. status: requested | approved | started | applied "
    "| failed; a step of an aborted transaction is counted again (the log is the record).",
    ["action", "status"],
)
REMEDIATION_CALLS = Counter(
    "kernel_remediation_webhook_calls",
    "Webhook deliveries (one per remediation, plus the re-sends after a crash). "
    "result: ok | failed (after its retries).",
    ["action", "result"],
)

# -- stream processors -------------------------------------------------------------
EVENTS_PROCESSED = Counter(
    "kernel_events_processed",
    "Input records a processor finished (outputs committed). processor: its name.",
    ["processor"],
)
EVENTS_FAILED = Counter(
    "kernel_events_failed",
    "Input records a processor could not process (each also dead-lettered or retried).",
    ["processor"],
)
DEAD_LETTERS = Counter(
    "kernel_dead_letters",
    "Records sent to the dead-letter topic. reason: schema | validation | "
    "decode | processing; transactional runners: decode | step | encode | too_large | "
    "produce (a category, never the message).",
    ["processor", "reason"],
)
BATCH_SIZE = Histogram(
    "kernel_batch_size",
    "Records per processed batch (poll batch of a runner or projector).",
    ["processor"],
    buckets=(1, 5, 10, 50, 100, 500, 1000, 2000, 5000, 10000),
)
TRANSACTIONS = Counter(
    "kernel_transactions",
    "Kafka or Postgres transactions of a processor. result: commit | abort | rewind "
    "(consumer and state put back to the last commit) | rebuild (producer rebuilt "
    "after a transactional call passed its deadline).",
    ["processor", "result"],
)

WORKER_HEARTBEAT_TIMESTAMP = Gauge(
    "kernel_worker_heartbeat_timestamp_seconds",
    "Last turn of a worker's loop (epoch s; every poll, idle or not); age = time() - this. "
    "worker: its `kernel run` name; instance: KERNEL_INSTANCE_ID.",
    ["worker", "instance"],
)

# -- audit chain -----------------------------------------------------------------
CHAIN_LENGTH = Gauge(
    "kernel_chain_length",
    "Records of a signed chain stored in audit_events (set by the auditor). "
    "A chain is one input partition: topic, partition.",
    ["topic", "partition"],
)
CHAIN_HEAD_TIMESTAMP = Gauge(
    "kernel_chain_head_timestamp_seconds",
    "Event time of the chain's head record in audit_events (epoch s, set by the auditor); "
    "head age = time() - this.",
    ["topic", "partition"],
)
CHAIN_CHECKPOINT_TIMESTAMP = Gauge(
    "kernel_chain_checkpoint_timestamp_seconds",
    "When the last signed Merkle checkpoint of a chain was projected (set by the auditor); "
    "age = time() - this.",
    ["topic", "partition"],
)
PROJECTION_CHECKPOINT_TIMESTAMP = Gauge(
    "kernel_projection_checkpoint_timestamp_seconds",
    "When a projector last committed a checkpoint (epoch s); age = time() - this.",
    ["projection"],
)
AUDIT_VERIFICATIONS = Counter(
    "kernel_audit_verifications",
    "Verification rounds of the auditor worker. result: ok | failed (some chain failed; "
    "counted every round until the process restarts).",
    ["result"],
)

# -- consumer lag (ops.lag exporter) ------------------------------------------------
CONSUMER_LAG_OFFSETS = Gauge(
    "kernel_consumer_lag_offsets",
    "Readable records not yet consumed (up to the last stable offset).",
    ["group", "topic", "partition"],
)
CONSUMER_LAG_SECONDS = Gauge(
    "kernel_consumer_lag_seconds",
    "Age of the oldest unconsumed record (its timestamp, else interpolated).",
    ["group", "topic", "partition"],
)
CONSUMER_LAG_STATUS = Gauge(
    "kernel_consumer_lag_status",
    "Partition status: 0 OK, 1 WARN, 2 REWIND, 3 STALL, 4 STOP (Burrow-style), "
    "5 NO_MEMBER (lag, no live member), 6 NEVER_COMMITTED (backlog never started on).",
    ["group", "topic", "partition"],
)
CONSUMER_GROUP_STATUS = Gauge(
    "kernel_consumer_group_status",
    "Worst partition status of a group (same codes as kernel_consumer_lag_status).",
    ["group"],
)
CONSUMER_GROUP_MEMBERS = Gauge(
    "kernel_consumer_group_members",
    "Live members serving a group (instances of its worker; 0: nobody, see NO_MEMBER).",
    ["group"],
)
CONSUMER_COMMITTED_OFFSET = Gauge(
    "kernel_consumer_committed_offset",
    "Committed offset (or projector checkpoint) of a group on a partition.",
    ["group", "topic", "partition"],
)
LOG_END_OFFSET = Gauge(
    "kernel_log_end_offset",
    "High watermark of a partition watched by the lag monitor.",
    ["topic", "partition"],
)
LAG_SAMPLE_DURATION = Histogram(
    "kernel_lag_sample_duration_seconds",
    "Time the lag monitor took to sample every watched group once.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

ACCESS_DENIED = Counter(
    "kernel_access_denied",
    "Requests refused at the API's door (401 no or bad credentials, 403 no role)",
    ["status"],
)
ACCESS_DENIED_UNRECORDED = Counter(
    "kernel_access_denied_unrecorded",
    "Refusals over the access log's rate budget: counted here and in the next record's "
    "suppressed field, not recorded one by one",
)

# Series of a fixed vocabulary exist from the start at 0, so that the first
# failure is an increase PromQL can see (a series born at 1 has no increase).
for _result in ("ok", "failed"):
    AUDIT_VERIFICATIONS.labels(_result)
for _status in ("401", "403"):
    ACCESS_DENIED.labels(_status)

ALL_METRICS: tuple[MetricWrapperBase, ...] = (
    SYNC_CHECK_DURATION,
    DECISIONS,
    DECISION_ERRORS,
    CANARY_GATE_VALUE,  # issue 12.2
    CANARY_WINDOW_OBSERVATIONS,
    CANARY_VERDICTS,
    CANARY_ROLLBACKS,
    CANARY_PROMOTIONS,
    REMEDIATION_STEPS,  # issue 12.4
    REMEDIATION_CALLS,
    EVENTS_PROCESSED,
    EVENTS_FAILED,
    DEAD_LETTERS,
    BATCH_SIZE,
    TRANSACTIONS,
    WORKER_HEARTBEAT_TIMESTAMP,
    CHAIN_LENGTH,
    CHAIN_HEAD_TIMESTAMP,
    CHAIN_CHECKPOINT_TIMESTAMP,
    PROJECTION_CHECKPOINT_TIMESTAMP,
    AUDIT_VERIFICATIONS,
    CONSUMER_LAG_OFFSETS,
    CONSUMER_LAG_SECONDS,
    CONSUMER_LAG_STATUS,
    CONSUMER_GROUP_STATUS,
    CONSUMER_GROUP_MEMBERS,
    CONSUMER_COMMITTED_OFFSET,
    LOG_END_OFFSET,
    LAG_SAMPLE_DURATION,
    ACCESS_DENIED,
    ACCESS_DENIED_UNRECORDED,
)

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def exposed_names() -> set[str]:
    """Every series name the metrics above put on ``/metrics`` (what PromQL sees)."""
    names: set[str] = set()
    for metric in ALL_METRICS:
        for family in metric.describe():
            names.update(family.name + s for s in _SUFFIXES[family.type])
    return names
