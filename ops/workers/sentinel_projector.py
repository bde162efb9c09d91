"""``kernel run sentinel-projector``: the policy registry and explain tables in Postgres.

Two :class:`~projections.projector.ProjectorRunner` s
(:meth:`ops.bootstrap.Kernel.sentinel_projectors`) -- ``policy_registry``
over the policies topic and ``policy_checks`` over the policy-checks topic --
polled in turn on one thread (policy changes are rare; the checks carry the
load), each a member of its own consumer group, sharing one dead-letter
producer. Records that cannot be decoded or projected are published to the
dead-letter topic with the reason, then skipped.
"""

from __future__ import annotations

from collections.abc import Callable

from projections.projector import ProjectorRunner

__all__ = ["InTurn"]


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
