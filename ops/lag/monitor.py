"""The lag monitor: sample offsets, keep the windows, report a snapshot.

Which groups: every consumer group whose id starts with the topic prefix (our
processors name their groups ``<prefix><processor>``), every group named in
``KERNEL_LAG_GROUPS``, and every projection with rows in
``projection_checkpoints`` (as ``projection:<name>``). Each :meth:`sample`
reads committed offsets and log ends once, probes the head record of lagging
partitions for its timestamp, feeds the pure evaluator and returns an
immutable :class:`LagSnapshot`; partitions that disappear are forgotten so
their metric series go away with them.

Groups the deployment expects (``expected``, :func:`ops.lag.expected.pipeline_groups`)
are watched even when Kafka does not list them: a partition with records that
such a group never committed is reported from its first record (lag = the
whole log, lag seconds = that record's age). With ``members`` on, each sample
also counts the live members of every group (:func:`ops.lag.expected.member_groups`);
lag above the allowance with no live member is ``NO_MEMBER`` -- or
``NEVER_COMMITTED`` on a partition never committed -- at once, on the first
sample, instead of after the STALL/STOP window. A never-committed partition of
a group that *has* live members is a worker starting: judged by the window.

The offsets and checkpoint sources are ports (:class:`OffsetSource`,
:class:`CheckpointSource`) so the monitor can be driven by fakes in unit tests.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ops.lag.age import EndHistory, lag_seconds
from ops.lag.expected import ExpectedGroup, member_groups
from ops.lag.postgres_checkpoints import PROJECTION_GROUP_PREFIX
from ops.lag.status import (
    HeadProbe,
    LagPolicy,
    Observation,
    PartitionHistory,
    PartitionStatus,
    Status,
    evaluate,
    group_status,
)
from schemas.errors import ConfigError, KernelError

__all__ = [
    "LAG_ENV_VARS",
    "CheckpointSource",
    "GroupLag",
    "LagConfig",
    "LagMonitor",
    "LagSnapshot",
    "OffsetSource",
    "PartitionLag",
]

TP = tuple[str, int]

# librdkafka's logical offset "the beginning": where a never-committed group starts.
OFFSET_BEGINNING = -2

# Read here rather than in ops/config.py so the lag monitor's knobs live with it.
LAG_ENV_VARS: dict[str, str] = {
    "KERNEL_LAG_GROUPS": "extra consumer groups to watch, comma-separated",
    "KERNEL_LAG_INTERVAL_S": "seconds between lag samples (default 15)",
    "KERNEL_LAG_WINDOW_S": "status window; STOP after this long stuck (default 300)",
    "KERNEL_LAG_STALL_AFTER_S": "STALL after this long stuck (default 60)",
    "KERNEL_LAG_ALLOWED": "lag in offsets that is never a problem (default 0)",
}


class LogEndLike(Protocol):
    @property
    def high_watermark(self) -> int: ...
    @property
    def last_stable(self) -> int: ...


class OffsetSource(Protocol):
    def groups(self) -> list[str]: ...
    def committed(self, groups: Iterable[str]) -> dict[str, dict[TP, int]]: ...
    def ends(self, partitions: Iterable[TP]) -> Mapping[TP, LogEndLike]: ...
    def probe(self, positions: Mapping[TP, int]) -> Mapping[TP, HeadProbe]: ...
    def partitions(self, topics: Iterable[str]) -> Mapping[str, int]: ...
    def members(self, groups: Iterable[str]) -> Mapping[str, int]: ...


class CheckpointSource(Protocol):
    def checkpoints(self) -> dict[str, dict[TP, int]]: ...


@dataclass(frozen=True)
class LagConfig:
    groups: tuple[str, ...] = ()
    interval_s: float = 15.0
    policy: LagPolicy = field(default_factory=LagPolicy)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LagConfig:
        e = os.environ if env is None else env
        try:
            policy = LagPolicy(
                window_s=float(e.get("KERNEL_LAG_WINDOW_S", "300")),
                stall_after_s=float(e.get("KERNEL_LAG_STALL_AFTER_S", "60")),
                allowed_lag=int(e.get("KERNEL_LAG_ALLOWED", "0")),
            )
            interval = float(e.get("KERNEL_LAG_INTERVAL_S", "15"))
        except ValueError as exc:
            raise ConfigError(f"lag monitor settings (KERNEL_LAG_*): {exc}") from exc
        groups = tuple(g.strip() for g in e.get("KERNEL_LAG_GROUPS", "").split(",") if g.strip())
        return cls(groups=groups, interval_s=interval, policy=policy)


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int  # -1: never committed
    log_end: int
    last_stable: int
    lag: int
    lag_seconds: float
    lag_seconds_source: str
    status: Status
    reason: str


@dataclass(frozen=True)
class GroupLag:
    group: str
    status: Status
    partitions: tuple[PartitionLag, ...]
    members: int | None = None  # live members serving the group; None: not asked

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def lag_seconds(self) -> float:
        return max((p.lag_seconds for p in self.partitions), default=0.0)


@dataclass(frozen=True)
class LagSnapshot:
    ts: float
    groups: tuple[GroupLag, ...]

    def group(self, name: str) -> GroupLag | None:
        return next((g for g in self.groups if g.group == name), None)


class LagMonitor:
    def __init__(
        self,
        offsets: OffsetSource,
        *,
        prefix: str,
        config: LagConfig | None = None,
        checkpoints: CheckpointSource | None = None,
        probe: bool = True,
        expected: Mapping[str, ExpectedGroup] | None = None,
        members: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.offsets = offsets
        self.prefix = prefix
        self.config = config or LagConfig()
        self.checkpoints = checkpoints
        self.probe_heads = probe
        self.expected = dict(expected or {})
        self.check_members = members
        self._clock = clock
        self._histories: dict[tuple[str, str, int], PartitionHistory] = {}
        self._ends: dict[TP, EndHistory] = {}

    def watched_groups(self) -> list[str]:
        ours = [g for g in self.offsets.groups() if self.prefix and g.startswith(self.prefix)]
        return sorted(set(ours) | set(self.config.groups))

    def sample(self, only: Iterable[str] | None = None) -> LagSnapshot:
        wanted = set(only) if only is not None else None
        groups = [g for g in self.watched_groups() if wanted is None or g in wanted]
        committed = self.offsets.committed(groups)
        projections = self.checkpoints is not None
        if self.checkpoints is not None:
            try:
                stored = self.checkpoints.checkpoints()
            except KernelError:
                # Postgres is down: projections cannot be judged this sample, and
                # their missing checkpoints must not read as "never committed".
                stored, projections = {}, False
            for group, positions in stored.items():
                if wanted is None or group in wanted:
                    committed[group] = positions
        never = self._never_committed(committed, wanted, projections=projections)
        partitions = {tp for positions in committed.values() for tp in positions}
        partitions |= {tp for tps in never.values() for tp in tps}
        ends = self.offsets.ends(partitions)
        now = self._clock()
        for tp, end in ends.items():
            self._ends.setdefault(tp, EndHistory()).add(now, end.last_stable)
        # A never-committed partition without records is nothing to report.
        never = {
            g: {tp for tp in tps if tp in ends and ends[tp].last_stable > 0}
            for g, tps in never.items()
        }
        live = self._live_members(set(committed) | {g for g, tps in never.items() if tps})

        reports: list[GroupLag] = []
        seen: set[tuple[str, str, int]] = set()
        for group in sorted(set(committed) | {g for g, tps in never.items() if tps}):
            positions = {tp: o for tp, o in committed.get(group, {}).items() if tp in ends}
            unstarted = never.get(group, set())
            positions.update(dict.fromkeys(unstarted, OFFSET_BEGINNING))
            heads = self._probe(positions, ends)
            members = live.get(group)
            rows: list[PartitionLag] = []
            for (topic, partition), offset in sorted(positions.items()):
                end = ends[(topic, partition)]
                obs = Observation(
                    now,
                    max(0, offset),
                    end.high_watermark,
                    last_stable=end.last_stable,
                    head=heads.get((topic, partition)),
                )
                key = (group, topic, partition)
                seen.add(key)
                history = self._histories.setdefault(key, PartitionHistory(self.config.policy))
                history.observe(obs)
                verdict = self._judge(evaluate(history), (topic, partition) in unstarted, members)
                age = lag_seconds(obs, self._ends[(topic, partition)])
                rows.append(
                    PartitionLag(
                        group,
                        topic,
                        partition,
                        -1 if (topic, partition) in unstarted else offset,
                        end.high_watermark,
                        end.last_stable,
                        verdict.lag,
                        age.seconds,
                        age.source,
                        verdict.status,
                        verdict.reason,
                    )
                )
            status = group_status(r.status for r in rows)
            reports.append(GroupLag(group, status, tuple(rows), members))
        for key in set(self._histories) - seen:
            del self._histories[key]
        for tp in set(self._ends) - partitions:
            del self._ends[tp]
        return LagSnapshot(now, tuple(reports))

    def _never_committed(
        self,
        committed: Mapping[str, Mapping[TP, int]],
        wanted: set[str] | None,
        *,
        projections: bool,
    ) -> dict[str, set[TP]]:
        """Partitions of the expected groups' topics that the group never committed.

        Projections (``projection:<name>``) only when their checkpoints were read.
        """
        expected = {
            g: e
            for g, e in self.expected.items()
            if (wanted is None or g in wanted)
            and (projections or not g.startswith(PROJECTION_GROUP_PREFIX))
        }
        if not expected:
            return {}
        counts = self.offsets.partitions({t for e in expected.values() for t in e.topics})
        out: dict[str, set[TP]] = {}
        for group, spec in expected.items():
            have = committed.get(group, {})
            out[group] = {
                (t, p) for t in spec.topics for p in range(counts.get(t, 0)) if (t, p) not in have
            }
        return out

    def _live_members(self, groups: Iterable[str]) -> dict[str, int]:
        """Live members per group; a group missing from the answer: unknown.

        A Kafka group the broker does not know has no members. A projection
        whose projector group does not exist at all is unknown, not dead: a
        projector that positions itself without joining a group (``assign``)
        leaves no group behind, and the STALL/STOP window judges it instead.
        """
        if not self.check_members:
            return {}
        serving = {g: member_groups(g, self.prefix) for g in groups}
        counts = self.offsets.members({m for ms in serving.values() for m in ms})
        live: dict[str, int] = {}
        for group, candidates in serving.items():
            found = [counts[m] for m in candidates if m in counts]
            if found:
                live[group] = sum(found)
            elif not group.startswith(PROJECTION_GROUP_PREFIX):
                live[group] = 0
        return live

    def _judge(
        self, verdict: PartitionStatus, unstarted: bool, members: int | None
    ) -> PartitionStatus:
        """The window's verdict, overruled at once by a dead or never-started group."""
        behind = verdict.lag > self.config.policy.allowed_lag
        if not behind:
            return verdict
        if unstarted and not members:
            why = "never committed" + (", no live member" if members == 0 else "")
            return PartitionStatus(
                Status.NEVER_COMMITTED,
                verdict.lag,
                verdict.stuck_for_s,
                f"{why}; lag {verdict.lag}",
            )
        if members == 0:
            return PartitionStatus(
                Status.NO_MEMBER, verdict.lag, verdict.stuck_for_s,
                f"no live member; lag {verdict.lag}",
            )  # fmt: skip
        if unstarted:
            return PartitionStatus(
                verdict.status, verdict.lag, verdict.stuck_for_s,
                f"never committed (starting?); {verdict.reason}",
            )  # fmt: skip
        return verdict

    def _probe(
        self, positions: Mapping[TP, int], ends: Mapping[TP, LogEndLike]
    ) -> Mapping[TP, HeadProbe]:
        if not self.probe_heads:
            return {}
        lagging = {tp: o for tp, o in positions.items() if ends[tp].last_stable > max(0, o)}
        return self.offsets.probe(lagging) if lagging else {}
