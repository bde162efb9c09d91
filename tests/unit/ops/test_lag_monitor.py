"""The monitor and exporter driven by fake offset sources (no broker)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import REGISTRY

from ops.commands.lag import render_table, snapshot_json
from ops.health import judge_lag
from ops.lag.expected import ExpectedGroup
from ops.lag.exporter import LagExporter
from ops.lag.monitor import LagConfig, LagMonitor
from ops.lag.status import HeadProbe, LagPolicy, Status
from schemas.errors import StoreUnavailableError

TP = tuple[str, int]


@dataclass(frozen=True)
class End:
    high_watermark: int
    last_stable: int


@dataclass
class FakeOffsets:
    group_ids: list[str]
    commits: dict[str, dict[TP, int]]
    log_ends: dict[TP, End]
    heads: dict[TP, HeadProbe] = field(default_factory=dict)
    probed: list[dict[TP, int]] = field(default_factory=list)
    topic_partitions: dict[str, int] = field(default_factory=dict)
    live: dict[str, int] | None = None  # None: every group has one member

    def partitions(self, topics: Iterable[str]) -> dict[str, int]:
        return {t: self.topic_partitions[t] for t in topics if t in self.topic_partitions}

    def members(self, groups: Iterable[str]) -> dict[str, int]:
        """Groups that exist: every one with one member, or those in ``live``."""
        if self.live is None:
            return dict.fromkeys(groups, 1)
        return {g: self.live[g] for g in groups if g in self.live}

    def groups(self) -> list[str]:
        return list(self.group_ids)

    def committed(self, groups: Iterable[str]) -> dict[str, dict[TP, int]]:
        return {g: dict(self.commits.get(g, {})) for g in groups}

    def ends(self, partitions: Iterable[TP]) -> Mapping[TP, End]:
        return {tp: self.log_ends[tp] for tp in partitions if tp in self.log_ends}

    def probe(self, positions: Mapping[TP, int]) -> Mapping[TP, HeadProbe]:
        self.probed.append(dict(positions))
        return {tp: h for tp, h in self.heads.items() if tp in positions}


class FakeCheckpoints:
    def checkpoints(self) -> dict[str, dict[TP, int]]:
        return {"projection:audit": {("p.actions", 0): 7}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


POLICY = LagPolicy(window_s=10.0, stall_after_s=3.0)


def make() -> tuple[FakeOffsets, Clock, LagMonitor]:
    offsets = FakeOffsets(
        ["p.signer", "other", "p.projector"],
        {"p.signer": {("p.actions", 0): 5, ("p.actions", 1): 0}, "extra": {("x", 0): 1}},
        {("p.actions", 0): End(10, 10), ("p.actions", 1): End(0, 0), ("x", 0): End(1, 1)},
    )
    clock = Clock()
    monitor = LagMonitor(
        offsets,
        prefix="p.",
        config=LagConfig(groups=("extra",), interval_s=1.0, policy=POLICY),
        checkpoints=FakeCheckpoints(),
        clock=clock,
    )
    return offsets, clock, monitor


def test_watches_our_prefix_configured_groups_and_projections() -> None:
    _, _, monitor = make()
    snap = monitor.sample()
    assert [g.group for g in snap.groups] == [
        "extra",
        "p.projector",
        "p.signer",
        "projection:audit",
    ]
    signer = snap.group("p.signer")
    assert signer is not None
    assert [p.lag for p in signer.partitions] == [5, 0]
    projection = snap.group("projection:audit")
    assert projection is not None
    assert projection.partitions[0].lag == 3
    assert snap.group("p.projector") is not None
    assert snap.group("other") is None


def test_probes_only_lagging_partitions_and_uses_the_head_timestamp() -> None:
    offsets, clock, monitor = make()
    offsets.heads[("p.actions", 0)] = HeadProbe(5, clock.now - 42.0)
    snap = monitor.sample(["p.signer"])
    assert offsets.probed == [{("p.actions", 0): 5}]
    signer = snap.group("p.signer")
    assert signer is not None
    assert signer.partitions[0].lag_seconds == 42.0
    assert signer.partitions[0].lag_seconds_source == "timestamp"


def test_stuck_group_goes_stall_then_stop_and_recovers() -> None:
    offsets, clock, monitor = make()
    seen = []
    for _ in range(14):
        offsets.log_ends[("p.actions", 0)] = End(
            offsets.log_ends[("p.actions", 0)].high_watermark + 3,
            offsets.log_ends[("p.actions", 0)].last_stable + 3,
        )
        group = monitor.sample(["p.signer"]).group("p.signer")
        assert group is not None
        seen.append(group.status)
        clock.now += 1.0
    assert Status.STALL in seen
    assert seen[-1] is Status.STOP
    assert seen.index(Status.STOP) > seen.index(Status.STALL)
    offsets.commits["p.signer"][("p.actions", 0)] = offsets.log_ends[("p.actions", 0)].last_stable
    group = monitor.sample(["p.signer"]).group("p.signer")
    assert group is not None
    assert group.status is Status.OK


def test_exporter_publishes_and_forgets_vanished_partitions() -> None:
    offsets, _, monitor = make()
    exporter = LagExporter(monitor)
    exporter.sample_and_publish()
    labels = {"group": "p.signer", "topic": "p.actions", "partition": "0"}
    assert REGISTRY.get_sample_value("kernel_consumer_lag_offsets", labels) == 5.0
    assert REGISTRY.get_sample_value("kernel_consumer_lag_status", labels) == 0.0
    assert REGISTRY.get_sample_value("kernel_consumer_group_status", {"group": "extra"}) == 0.0
    assert REGISTRY.get_sample_value("kernel_consumer_group_members", {"group": "p.signer"}) == 1.0
    assert (
        REGISTRY.get_sample_value("kernel_log_end_offset", {"topic": "p.actions", "partition": "0"})
        == 10.0
    )
    del offsets.commits["p.signer"]
    offsets.group_ids.remove("p.signer")
    exporter.sample_and_publish()
    assert REGISTRY.get_sample_value("kernel_consumer_lag_offsets", labels) is None
    assert REGISTRY.get_sample_value("kernel_consumer_group_status", {"group": "p.signer"}) is None
    assert REGISTRY.get_sample_value("kernel_consumer_group_members", {"group": "p.signer"}) is None


def test_table_and_json_render_every_partition() -> None:
    _, _, monitor = make()
    snap = monitor.sample()
    table = render_table(snap)
    assert "p.signer" in table
    assert "STATUS" in table.splitlines()[0]
    doc = snapshot_json(snap)
    signer = next(g for g in doc["groups"] if g["group"] == "p.signer")
    assert signer["lag"] == 5
    assert signer["partitions"][0]["status"] == "OK"


def test_config_from_env() -> None:
    cfg = LagConfig.from_env(
        {"KERNEL_LAG_GROUPS": "a, b,", "KERNEL_LAG_WINDOW_S": "20", "KERNEL_LAG_STALL_AFTER_S": "5"}
    )
    assert cfg.groups == ("a", "b")
    assert cfg.policy.window_s == 20.0
    assert cfg.policy.stall_after_s == 5.0


def _expecting(live: dict[str, int] | None) -> tuple[FakeOffsets, Clock, LagMonitor]:
    """A deployment expecting p.sentinel over p.actions (2 partitions) and a projection."""
    offsets = FakeOffsets(
        [],
        {},
        {("p.actions", 0): End(10, 10), ("p.actions", 1): End(0, 0), ("p.chain", 0): End(4, 4)},
        topic_partitions={"p.actions": 2, "p.chain": 1},
        live=live,
    )
    clock = Clock()
    offsets.heads[("p.actions", 0)] = HeadProbe(0, clock.now - 90.0)
    monitor = LagMonitor(
        offsets,
        prefix="p.",
        config=LagConfig(interval_s=1.0, policy=POLICY),
        checkpoints=_NoCheckpoints(),
        expected={
            "p.sentinel": ExpectedGroup(("p.actions",)),
            "projection:audit": ExpectedGroup(("p.chain",)),
        },
        clock=clock,
    )
    return offsets, clock, monitor


class _NoCheckpoints:
    """The projection_checkpoints table is readable and empty."""

    def checkpoints(self) -> dict[str, dict[TP, int]]:
        return {}


def test_a_never_started_group_with_a_backlog_is_flagged_on_the_first_sample() -> None:
    offsets, _, monitor = _expecting(live={})
    snap = monitor.sample()
    sentinel = snap.group("p.sentinel")
    assert sentinel is not None
    assert sentinel.status is Status.NEVER_COMMITTED
    assert sentinel.members == 0
    # the empty partition is nothing to report; the other has its whole log as lag
    [part] = sentinel.partitions
    assert (part.partition, part.committed, part.lag) == (0, -1, 10)
    assert part.lag_seconds == 90.0  # the age of the oldest record
    assert offsets.probed[0] == {("p.actions", 0): -2}  # read from the beginning
    projection = snap.group("projection:audit")  # its projector group does not exist
    assert projection is not None and projection.status is Status.NEVER_COMMITTED
    assert projection.members is None
    ok, detail = judge_lag(snap, max_lag_s=300)
    assert not ok and "p.sentinel is NEVER_COMMITTED" in detail
    doc = snapshot_json(snap)
    row = next(g for g in doc["groups"] if g["group"] == "p.sentinel")["partitions"][0]
    assert row["committed"] is None and row["status"] == "NEVER_COMMITTED"
    line = next(
        r for r in render_table(snap).splitlines() if r.split()[:2] == ["p.sentinel", "p.actions"]
    )
    assert line.split()[3:5] == ["-", "10"] and line.endswith("NEVER_COMMITTED")


def test_a_starting_group_that_has_members_is_judged_by_the_window() -> None:
    _, _, monitor = _expecting(live=None)  # every group has a live member
    sentinel = monitor.sample().group("p.sentinel")
    assert sentinel is not None
    assert sentinel.status is Status.OK
    assert sentinel.partitions[0].reason.startswith("never committed (starting?)")


def test_projection_members_are_its_projector_group() -> None:
    _, _, monitor = _expecting(live={"projector-audit": 1})
    snap = monitor.sample()
    assert snap.group("projection:audit").status is Status.OK  # type: ignore[union-attr]
    assert snap.group("p.sentinel").status is Status.NEVER_COMMITTED  # type: ignore[union-attr]


def test_a_projection_whose_projector_group_is_empty_is_no_member() -> None:
    offsets, _, monitor = make()
    offsets.live = {"p.signer": 1, "p.projector": 1, "extra": 1, "p.projector-audit": 0}
    projection = monitor.sample().group("projection:audit")
    assert projection is not None
    assert (projection.members, projection.status) == (0, Status.NO_MEMBER)
    offsets.live = {"p.signer": 1, "p.projector": 1, "extra": 1}  # no projector group at all
    projection = monitor.sample().group("projection:audit")
    assert projection is not None
    assert (projection.members, projection.status) == (None, Status.OK)  # the window judges


def test_lag_without_a_live_member_is_no_member_at_once() -> None:
    offsets, _, monitor = make()
    offsets.live = {"p.projector": 1, "p.signer": 0}  # p.signer's member died
    snap = monitor.sample()
    signer = snap.group("p.signer")
    assert signer is not None
    assert signer.status is Status.NO_MEMBER
    assert [p.status for p in signer.partitions] == [Status.NO_MEMBER, Status.OK]  # lag 5, 0
    assert "no live member" in signer.partitions[0].reason
    ok, detail = judge_lag(snap, max_lag_s=300)
    assert not ok and "p.signer is NO_MEMBER" in detail
    offsets.live = None
    assert monitor.sample().group("p.signer").status is Status.OK  # type: ignore[union-attr]


def test_members_can_be_left_unchecked() -> None:
    offsets, _, _ = make()
    offsets.live = {}
    monitor = LagMonitor(offsets, prefix="p.", config=LagConfig(policy=POLICY), members=False)
    signer = monitor.sample().group("p.signer")
    assert signer is not None and signer.status is Status.OK and signer.members is None


class _DownCheckpoints:
    def checkpoints(self) -> dict[str, dict[TP, int]]:
        raise StoreUnavailableError("Postgres did not answer")


def test_projections_are_left_out_not_never_committed_while_postgres_is_down() -> None:
    offsets, clock, _ = _expecting(live={})
    monitor = LagMonitor(
        offsets,
        prefix="p.",
        config=LagConfig(policy=POLICY),
        checkpoints=_DownCheckpoints(),
        expected={
            "p.sentinel": ExpectedGroup(("p.actions",)),
            "projection:audit": ExpectedGroup(("p.chain",)),
        },
        clock=clock,
    )
    snap = monitor.sample()
    assert snap.group("projection:audit") is None
    assert snap.group("p.sentinel").status is Status.NEVER_COMMITTED  # type: ignore[union-attr]
