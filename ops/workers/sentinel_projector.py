"""``kernel run sentinel-projector``: the policy registry and explain tables in Postgres.

Two :class:`~projections.projector.ProjectorRunner` s -- ``policy_registry``
over the policies topic and ``policy_checks`` over the policy-checks topic --
polled in turn on one thread (policy changes are rare; the checks carry the
load), each a member of its own consumer group, sharing one dead-letter
producer. Records that cannot be decoded or projected are published to the
dead-letter topic with the reason, then skipped.
"""

from __future__ import annotations

from collections.abc import Callable

from ops.bootstrap import Kernel
from ops.workers import drive
from projections.projector import Projection, ProjectorRunner
from projections.sentinel import PolicyCheckProjection, PolicyRegistryProjection
from streams.kafka.producer import Producer

__all__ = ["HELP", "NAME", "build_runners", "run"]

NAME = "sentinel-projector"
HELP = "project policyChange and policyCheck events into policy_registry and policy_checks"


def build_runners(kernel: Kernel, producer: Producer | None = None) -> list[ProjectorRunner]:
    dlq = producer or kernel.producer()
    projections: list[Projection] = [
        PolicyRegistryProjection(kernel.names.policies),
        PolicyCheckProjection(kernel.names.policy_checks),
    ]
    return [kernel.projector(p, producer=dlq) for p in projections]


class InTurn:
    """Several projector runners polled in turn on one thread, as one runnable."""

    def __init__(self, runners: list[ProjectorRunner]) -> None:
        self.runners = runners

    def run(self, should_stop: Callable[[], bool]) -> None:
        while not should_stop():
            for runner in self.runners:
                runner.poll_once()

    def close(self) -> None:
        for runner in self.runners:
            runner.close()


def run(kernel: Kernel, should_stop: Callable[[], bool]) -> None:
    drive(InTurn(build_runners(kernel)), should_stop)
