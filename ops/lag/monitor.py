"""The lag monitor: sample offsets, keep the windows, report a snapshot.

Which groups: every consumer group whose id starts with the topic prefix (our
processors name their groups ``<prefix><processor>``), every group named in
``KERNEL_LAG_GROUPS``, and every projection with rows in
``projection_checkpoints`` (as ``projection:<name>``). Each :meth:`sample`
reads committed offsets and log ends once, probes the head record of lagging
partitions for its timestamp, feeds the pure evaluator and returns an
immutable :class:`LagSnapshot`; partitions that disappear are forgotten so
their metric series go away with them.

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
from ops.lag.status import (
    HeadProbe,
    LagPolicy,
    Observation,
    PartitionHistory,
    Status,
    evaluate,
    group_status,
)
from schemas.errors import ConfigError

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
    committed: int
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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.offsets = offsets
        self.prefix = prefix
        self.config = config or LagConfig()
        self.checkpoints = checkpoints
        self.probe_heads = probe
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
        if self.checkpoints is not None:
            for group, positions in self.checkpoints.checkpoints().items():
                if wanted is None or group in wanted:
                    committed[group] = positions
        partitions = {tp for positions in committed.values() for tp in positions}
        ends = self.offsets.ends(partitions)
        now = self._clock()
        for tp, end in ends.items():
            self._ends.setdefault(tp, EndHistory()).add(now, end.last_stable)

        reports: list[GroupLag] = []
        seen: set[tuple[str, str, int]] = set()
        for group in sorted(committed):
            positions = {tp: o for tp, o in committed[group].items() if tp in ends}
            heads = self._probe(positions, ends)
            rows: list[PartitionLag] = []
            for (topic, partition), offset in sorted(positions.items()):
                end = ends[(topic, partition)]
                obs = Observation(
                    now,
                    offset,
                    end.high_watermark,
                    last_stable=end.last_stable,
                    head=heads.get((topic, partition)),
                )
                key = (group, topic, partition)
                seen.add(key)
                history = self._histories.setdefault(key, PartitionHistory(self.config.policy))
                history.observe(obs)
                verdict = evaluate(history)
                age = lag_seconds(obs, self._ends[(topic, partition)])
                rows.append(
                    PartitionLag(
                        group,
                        topic,
                        partition,
                        offset,
                        end.high_watermark,
                        end.last_stable,
                        verdict.lag,
                        age.seconds,
                        age.source,
                        verdict.status,
                        verdict.reason,
                    )
                )
            reports.append(GroupLag(group, group_status(r.status for r in rows), tuple(rows)))
        for key in set(self._histories) - seen:
            del self._histories[key]
        for tp in set(self._ends) - partitions:
            del self._ends[tp]
        return LagSnapshot(now, tuple(reports))

    def _probe(
        self, positions: Mapping[TP, int], ends: Mapping[TP, LogEndLike]
    ) -> Mapping[TP, HeadProbe]:
        if not self.probe_heads:
            return {}
        lagging = {tp: o for tp, o in positions.items() if ends[tp].last_stable > o}
        return self.offsets.probe(lagging) if lagging else {}
