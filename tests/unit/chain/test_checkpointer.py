"""The checkpointer's pure step: the count rule, and a time rule no event's ``ts`` can stall."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import new_event, parse_ts
from streams.chain.checkpointer import Checkpointer, link_time
from streams.chain.signer import ChainSigner
from streams.chain.signing import LocalEd25519Signer
from streams.processor import InputRecord, OutputRecord

KEY = LocalEd25519Signer(b"\x02" * 32, "unit-signer")
MINUTE = 60_000
T0 = parse_ts("2026-12-01T12:00:00.000Z")
YEAR_9999 = parse_ts("9999-12-31T23:59:59.000Z")


def links(event_ts: Sequence[int], log_ts: Sequence[int]) -> list[InputRecord]:
    """Chain links of one input partition as the checkpointer reads them from the chain topic."""
    signer = ChainSigner(KEY, ["t.actions"], "t.chain", 1)
    state = signer.initial()
    out = []
    for offset, (ts, written) in enumerate(zip(event_ts, log_ts, strict=True)):
        event = new_event("kernelAction", "svc", "s", {"action": "a", "context": {"i": offset}})
        event = replace(event, ts_ms=ts)
        source = InputRecord("t.actions", 0, offset, written, b"s", event)
        state, (link,) = signer.step(state, source)
        out.append(InputRecord("t.chain", 0, offset, written, b"c", link.event))
    return out


def run(cp: Checkpointer, records: list[InputRecord]) -> list[OutputRecord]:
    state: dict[str, object] = {}
    outs: list[OutputRecord] = []
    for r in records:
        state, o = cp.step(state, r)  # type: ignore[arg-type]
        outs.extend(o)
    return outs


def sizes(outs: list[OutputRecord]) -> list[int]:
    return [o.event.body["size"] for o in outs]


def test_a_year_9999_event_does_not_switch_the_time_rule_off() -> None:
    cp = Checkpointer(KEY, "t.chain", "t.checkpoints", every=1000, interval_ms=MINUTE)
    # a link written every 30 s; the third audited event claims the year 9999
    written = [T0 + i * 30_000 for i in range(12)]
    event_ts = [YEAR_9999 if i == 2 else w for i, w in enumerate(written)]
    outs = run(cp, links(event_ts, written))
    # one checkpoint a minute of the signer's time, before and after the outlier
    assert sizes(outs) == [3, 5, 7, 9, 11]
    assert [o.event.ts_ms for o in outs] == [written[s - 1] for s in sizes(outs)]
    assert all(o.event.ts_ms < YEAR_9999 for o in outs)


def test_a_clock_stepping_far_back_checkpoints_and_restarts_the_rule() -> None:
    cp = Checkpointer(KEY, "t.chain", "t.checkpoints", every=1000, interval_ms=MINUTE)
    # the signer's clock jumps a day ahead at link 3 and comes back at link 4
    written = [T0, T0 + 10_000, T0 + 86_400_000, T0 + 30_000, T0 + 100_000, T0 + 130_000]
    outs = run(cp, links(written, written))
    assert sizes(outs) == [3, 4, 5]  # the jump, the return, a minute after the return


def test_a_record_without_a_timestamp_falls_back_to_the_event_time() -> None:
    (rec,) = links([T0], [-1])
    assert link_time(rec) == rec.event.ts_ms == T0
    assert link_time(replace(rec, timestamp_ms=T0 + 5)) == T0 + 5


class Reader:
    def __init__(self, records: list[InputRecord], committed: int) -> None:
        self.records, self._committed = records, committed

    def partitions(self, topic: str) -> list[int]:
        return [0]

    def read(
        self, topic: str, partition: int, start: int, end: int | None = None
    ) -> Sequence[InputRecord]:
        stop = len(self.records) if end is None else end
        return [r for r in self.records if start <= r.offset < stop]

    def read_keyed(
        self, topic: str, partition: int, start: int, end: int, keys: frozenset[bytes]
    ) -> Sequence[InputRecord]:
        return [r for r in self.read(topic, partition, start, end) if r.key in keys]

    def end_offset(self, topic: str, partition: int) -> int:
        return len(self.records)

    def committed(self, topic: str, partition: int) -> int:
        return self._committed


@settings(max_examples=30, deadline=None)
@given(
    gaps=st.lists(st.integers(-2 * MINUTE, 2 * MINUTE), min_size=1, max_size=25),
    event_ts=st.lists(st.sampled_from([T0, YEAR_9999, 0]), min_size=25, max_size=25),
    cut=st.integers(0, 25),
)
def test_recovery_then_steps_emit_what_steps_alone_emit(
    gaps: list[int], event_ts: list[int], cut: int
) -> None:
    written, t = [], T0
    for g in gaps:
        t += g
        written.append(t)
    records = links(event_ts[: len(written)], written)
    cut = min(cut, len(records))
    cp = Checkpointer(KEY, "t.chain", "t.checkpoints", every=7, interval_ms=MINUTE)
    alone = run(cp, records)
    state = cp.recover([("t.chain", 0)], Reader(records, cut))
    resumed: list[OutputRecord] = []
    for r in records[cut:]:
        state, o = cp.step(state, r)
        resumed.extend(o)
    assert [o.event for o in resumed] == [o.event for o in alone if o.event.body["size"] > cut]
    # and no stretch of links written over two intervals passes without a checkpoint
    due = {0, *sizes(alone)}
    for size in range(1, len(records) + 1):
        last = max(s for s in due if s < size)
        span = written[size - 1] - written[max(last, 1) - 1]
        assert size in due or abs(span) < MINUTE
