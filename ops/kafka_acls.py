"""Who may do what on the log: one Kafka principal per worker type, and its ACLs.

This is the one table of Kafka rights (DESIGN section 7, ADR 0015). The secured
local broker creates a SCRAM user for each of :data:`PRINCIPALS`, runs the
StandardAuthorizer with ``allow.everyone.if.no.acl.found=false`` (no ACL: no
access) and makes ``kernel-admin`` its one super user; ``kernel acls apply``
creates :func:`grants` for a topic prefix through the Admin API.

Each principal gets exactly its worker's topics, consumer group and
transactional id prefix, derived from the same names the workers use
(:class:`~schemas.topics.TopicNames`, a processor's ``name`` as its group,
``{group}-{instance}`` as its transactional id). Kafka implies DESCRIBE from
READ or WRITE, so only those are granted. ``IdempotentWrite`` on the cluster
is not needed: since Kafka 2.8 (KIP-679) WRITE on a topic is enough for an
idempotent producer. The readers that assign partitions and never commit
(state recovery, the policy feed, broadcast inputs, lag probes) join no group,
but librdkafka still looks up the coordinator of their uuid-named group: they
get DESCRIBE on their group prefix, nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator

from schemas.topics import TOPICS, TopicNames
from streams.kafka.acls import Grant, Operation

__all__ = ["ADMIN", "PRINCIPALS", "grants"]

ADMIN = "kernel-admin"

#: SCRAM user -> what runs as it.
PRINCIPALS: dict[str, str] = {
    ADMIN: "operators: kernel topics ensure, acls apply, policy, backup, doctor (super user)",
    "kernel-producer": "services publishing kernel actions (kernel publish)",
    "kernel-signer": "kernel run chain-signer",
    "kernel-checkpointer": "kernel run checkpointer",
    "kernel-sentinel": "kernel run sentinel",
    "kernel-projector": "kernel run audit-projector, sentinel-projector",
    "kernel-remediation": "kernel run remediation",
    "kernel-rollout": "kernel run rollout",
    "kernel-api": "kernel api (sync check, readiness)",
    "kernel-monitor": "kernel lag, the lag exporter",
}

PUBLISH_TRANSACTIONS = "kernel-publish-"  # kernel publish: one transactional id per run


def grants(names: TopicNames) -> list[Grant]:
    """Every ACL of the deployment whose topics carry ``names.prefix``."""
    return sorted(set(_grants(names)))


def _grants(n: TopicNames) -> Iterator[Grant]:
    p = n.prefix

    def topic(user: str, op: Operation, *topics: str) -> Iterator[Grant]:
        return (Grant(user, "topic", t, op) for t in topics)

    def worker(user: str, group: str, *readers: str) -> Iterator[Grant]:
        """A transactional worker: its group, transactional ids ``{group}-{instance}``,
        and the groups of the readers it recovers its state with."""
        yield Grant(user, "group", group, "read")
        yield Grant(user, "transactional_id", f"{group}-", "write", prefixed=True)
        yield from _readers(user, "kernel-reader", *readers)

    yield from topic("kernel-producer", "write", n.actions)
    yield Grant("kernel-producer", "transactional_id", PUBLISH_TRANSACTIONS, "write", True)

    yield from topic("kernel-signer", "read", *n.audited(), n.chain)  # chain: the heads
    yield from topic("kernel-signer", "write", n.chain, n.dlq)
    yield from worker("kernel-signer", f"{p}chain-signer")

    yield from topic("kernel-checkpointer", "read", n.chain)
    yield from topic("kernel-checkpointer", "write", n.checkpoints, n.dlq)
    yield from worker("kernel-checkpointer", f"{p}chain-checkpointer")

    # policies and approvals (the k-of-n rule, issue 12.3): broadcast
    yield from topic("kernel-sentinel", "read", n.actions, n.policies, n.approvals)
    yield from topic("kernel-sentinel", "write", n.policy_checks, n.dlq)
    yield from worker("kernel-sentinel", f"{p}sentinel", "kernel-broadcast")

    # The canary gates (issue 12.2): decisions in, policies broadcast; the
    # rollback or promotion out, on the policies topic.
    yield from topic("kernel-rollout", "read", n.policy_checks, n.policies)
    yield from topic("kernel-rollout", "write", n.policies, n.dlq)
    yield from worker("kernel-rollout", f"{p}rollout", "kernel-broadcast")

    # Remediation (issue 12.4): decisions and its own steps in; steps and the
    # quarantine kernelAction out; its recovery folds the remediations topic.
    remediations = n.for_event_type("remediation")
    yield from topic("kernel-remediation", "read", n.policy_checks, remediations)
    yield from topic("kernel-remediation", "write", remediations, n.actions, n.dlq)
    yield from worker("kernel-remediation", f"{p}remediation")

    yield from topic("kernel-projector", "read", n.chain, n.checkpoints)
    yield from topic("kernel-projector", "read", n.policies, n.policy_checks)
    yield from topic("kernel-projector", "write", n.dlq)
    yield Grant("kernel-projector", "group", f"{p}projector-", "read", prefixed=True)
    # k-of-n approvals (issue 12.3): the policy registry folds a HIGH/CRITICAL activation
    # against the approvals topic, read whole by an assign-only reader
    yield from topic("kernel-projector", "read", n.approvals)
    yield from _readers("kernel-projector", "kernel-reader")

    # The API writes the sync check's decisions, the actions producers POST to
    # /events and the refusals at its door (access); it folds the policies into
    # memory; its /ready runs the lag monitor, so it observes like the monitor does.
    yield from topic("kernel-api", "write", n.policy_checks, n.actions, n.access)
    yield from topic("kernel-api", "read", n.policies)
    yield from _readers("kernel-api", "kernel-policy-feed")
    # k-of-n approvals (issue 12.3): POST /approvals/... publishes approvals and quorums
    yield from topic("kernel-api", "write", n.approvals)
    # ... and the quorum decision of a high-risk remediation, when an approval
    # submitted over HTTP completes its quorum (issue 12.3 + 12.4)
    yield from topic("kernel-api", "write", n.for_event_type("remediation"))
    yield from _readers("kernel-api", "kernel-reader")
    for user in ("kernel-api", "kernel-monitor"):
        yield from _observer(user, n)


def _observer(user: str, n: TopicNames) -> Iterator[Grant]:
    """Lag: topic metadata and ends, group offsets and members, and the head records'
    timestamps (a probe reads them: READ, never a group of its own)."""
    for spec in TOPICS:
        yield Grant(user, "topic", n.name(spec.name), "read")
    yield Grant(user, "group", n.prefix, "describe", prefixed=True)
    yield Grant(user, "group", "projector-", "describe", prefixed=True)
    yield Grant(user, "group", "kernel-lag-probe", "describe")
    yield Grant(user, "group", "kernel-replay-offsets", "describe")


def _readers(user: str, *groups: str) -> Iterator[Grant]:
    """Assign-only readers (:func:`streams.kafka.log_reader.reader_consumer`): groups
    ``{name}-{uuid}``, never joined; DESCRIBE lets them find a coordinator."""
    for group in groups:
        yield Grant(user, "group", f"{group}-", "describe", prefixed=True)
