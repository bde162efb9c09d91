"""``kernel run sentinel-projector``: the policy registry and explain tables in Postgres.

Two :class:`~projections.projector.ProjectorRunner` s -- ``policy_registry``
over the policies topic and ``policy_checks`` over the policy-checks topic --
polled in turn on one thread (policy changes are rare; the checks carry the
load). Records that cannot be decoded are published to the dead-letter topic
with the reason, then skipped.
"""

from __future__ import annotations

from collections.abc import Callable

from ops.bootstrap import Kernel
from ops.runner_metrics import ProjectorMetrics
from projections.projector import Projection, ProjectorRunner
from projections.sentinel import PolicyCheckProjection, PolicyRegistryProjection
from streams.dead_letter import dead_letter
from streams.kafka.producer import Producer

__all__ = ["HELP", "NAME", "build_runners", "run"]

NAME = "sentinel-projector"
HELP = "project policyChange and policyCheck events into policy_registry and policy_checks"


def _dead_letters(producer: Producer, processor: str) -> Callable[..., None]:
    def on_reject(
        topic: str, partition: int, offset: int, value: bytes | None, exc: Exception
    ) -> None:
        producer.publish(
            dead_letter(
                processor=processor, reason=f"undecodable record: {exc}",
                error_type=type(exc).__name__, topic=topic, partition=partition,
                offset=offset, key=None, value=value,
            )
        )  # fmt: skip

    return on_reject


def build_runners(kernel: Kernel, producer: Producer | None = None) -> list[ProjectorRunner]:
    dlq = producer or kernel.producer()
    projections: list[Projection] = [
        PolicyRegistryProjection(kernel.names.policies),
        PolicyCheckProjection(kernel.names.policy_checks),
    ]
    return [
        ProjectorRunner(
            p,
            bootstrap=kernel.settings.kafka_bootstrap,
            database_url=kernel.settings.database_url,
            codec=kernel.codec,
            on_reject=_dead_letters(dlq, p.name),
        )
        for p in projections
    ]


def run(kernel: Kernel, should_stop: Callable[[], bool]) -> None:
    runners = build_runners(kernel)
    observers = [ProjectorMetrics(r.projection.name) for r in runners]
    try:
        while not should_stop():
            for runner, observe in zip(runners, observers, strict=True):
                observe(runner, runner.poll_once())
    finally:
        for runner in runners:
            runner.close()
