"""The consumer groups a deployment must have, and where their live members are.

Kafka lists only groups that exist: a worker that died before its first
commit leaves no group behind, and its backlog would be nobody's lag. The
monitor therefore also watches the groups the pipeline *expects* -- one per
worker, over its input topics -- and reports a partition with records that
such a group never committed as ``NEVER_COMMITTED`` (lag = the whole log).

Liveness comes from group membership (``describe_consumer_groups``): a Kafka
group is served by its own members; a projection (``projection:<name>``, whose
position is its Postgres checkpoint) by the members of the consumer group its
projector joins, ``projector-<name>`` (also accepted with the topic prefix).
When no such group exists at all the projection's liveness is unknown (a
projector that assigns partitions itself joins no group) and the STALL/STOP
window judges it; an existing group with no member is a dead projector.
"""

from __future__ import annotations

from dataclasses import dataclass

from ops.lag.postgres_checkpoints import PROJECTION_GROUP_PREFIX
from schemas.topics import TopicNames

__all__ = ["ExpectedGroup", "member_groups", "pipeline_groups", "worker_of"]


@dataclass(frozen=True)
class ExpectedGroup:
    topics: tuple[str, ...]  # the input topics the group must consume (through the group)
    worker: str = ""  # the ``kernel run`` worker that serves it


def member_groups(group: str, prefix: str) -> tuple[str, ...]:
    """The Kafka consumer groups whose live members serve ``group``."""
    if group.startswith(PROJECTION_GROUP_PREFIX):
        name = group.removeprefix(PROJECTION_GROUP_PREFIX)
        return (f"projector-{name}", f"{prefix}projector-{name}")
    return (group,)


def pipeline_groups(names: TopicNames) -> dict[str, ExpectedGroup]:
    """Every group of the audit and decision pipeline, by the names its runners use.

    The sentinel's policies topic is left out: every instance reads it as a
    broadcast input, outside the group, so the group never commits it.
    """
    from projections.audit import AuditProjection  # noqa: PLC0415
    from projections.sentinel import PolicyCheckProjection, PolicyRegistryProjection  # noqa: PLC0415
    from streams.chain.checkpointer import Checkpointer  # noqa: PLC0415
    from streams.chain.signer import ChainSigner  # noqa: PLC0415
    from streams.sentinel.stream import PROCESSOR_NAME as SENTINEL  # noqa: PLC0415

    p = names.prefix
    projection = PROJECTION_GROUP_PREFIX
    return {
        f"{p}{ChainSigner.name}": ExpectedGroup(tuple(names.audited()), "signer"),
        f"{p}{Checkpointer.name}": ExpectedGroup((names.chain,), "checkpointer"),
        f"{p}{SENTINEL}": ExpectedGroup((names.actions,), "sentinel"),
        f"{projection}{AuditProjection.name}": ExpectedGroup(
            (names.chain, names.checkpoints), "audit-projector"
        ),
        f"{projection}{PolicyRegistryProjection.name}": ExpectedGroup(
            (names.policies,), "sentinel-projector"
        ),
        f"{projection}{PolicyCheckProjection.name}": ExpectedGroup(
            (names.policy_checks,), "sentinel-projector"
        ),
    }


def worker_of(group: str, names: TopicNames) -> str | None:
    """The ``kernel run`` worker that serves ``group``, if it is one of the pipeline's."""
    spec = pipeline_groups(names).get(group)
    return spec.worker if spec is not None and spec.worker else None
