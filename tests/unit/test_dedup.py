"""The dedup window (``streams.dedup``): its verdicts, under rewinds and restarts.

The reference is the definition itself: a record at offset ``o`` is a
duplicate when a record of the same partition at an offset in ``[o - N, o)``
has its eventId, and the refusal names the most recent such offset. The
properties drive :class:`DuplicateCheck` the way the runner does -- batches,
an aborted batch rewound to the state before it and stepped again, a restart
that recovers from the committed offset through a LogReader -- and require
the reference's verdict on every record, every time it is stepped. The
signer and the sentinel, run over the same actions partition, refuse exactly
the same records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ops.config import Settings
from schemas.errors import ConfigError, ValidationError
from schemas.events import Event, new_event
from streams.chain.signer import ChainSigner
from streams.chain.signing import LocalEd25519Signer
from streams.dedup import DuplicateCheck, RecentIds
from streams.processor import InputRecord
from streams.sentinel.stream import SentinelProcessor

TOPIC = "t.actions"
IDS = [f"00000000-0000-4000-8000-{i:012d}" for i in range(6)]


def reference(log: Sequence[tuple[int, str]], window: int) -> dict[int, int | None]:
    """offset -> the offset it duplicates (or None), straight from the definition."""
    out: dict[int, int | None] = {}
    for i, (offset, event_id) in enumerate(log):
        earlier = [o for o, e in log[:i] if e == event_id and offset - window <= o < offset]
        out[offset] = max(earlier) if earlier and window else None
    return out


def record(offset: int, event_id: str, partition: int = 0) -> InputRecord:
    event = new_event("kernelAction", "svc", "s", {"action": "a.x", "context": {"n": offset}})
    event = Event(event_id, event.event_type, event.ts_ms, event.actor, event.subject, event.body)
    return InputRecord(TOPIC, partition, offset, event.ts_ms, b"s", event)


def verdict(check: DuplicateCheck, rec: InputRecord) -> int | None:
    try:
        check.check(rec)
    except ValidationError as exc:
        refused = exc
    else:
        return None
    assert refused.field == "eventId"
    return int(str(refused).split("at offset ")[1].split(" ")[0])


class Reader:
    def __init__(self, records: list[InputRecord], committed: int) -> None:
        self.records, self._committed = records, committed
        self.reads: list[tuple[int, int | None]] = []

    def partitions(self, topic: str) -> list[int]:
        return [0]

    def read(
        self, topic: str, partition: int, start: int, end: int | None = None
    ) -> Sequence[InputRecord]:
        self.reads.append((start, end))
        return [r for r in self.records if r.offset >= start and (end is None or r.offset < end)]

    def read_keyed(
        self, topic: str, partition: int, start: int, end: int, keys: frozenset[bytes]
    ) -> Sequence[InputRecord]:
        return [r for r in self.read(topic, partition, start, end) if r.key in keys]

    def end_offset(self, topic: str, partition: int) -> int:
        return self.records[-1].offset + 1 if self.records else 0

    def committed(self, topic: str, partition: int) -> int:
        return self._committed


logs = st.lists(st.tuples(st.integers(1, 3), st.sampled_from(IDS)), min_size=1, max_size=80).map(
    lambda steps: [(sum(g for g, _ in steps[: i + 1]), e) for i, (_, e) in enumerate(steps)]
)


@settings(max_examples=300, deadline=None)
@given(log=logs, window=st.integers(0, 12), slack=st.integers(24, 40), data=st.data())
def test_verdicts_equal_the_definition_through_aborts_and_restarts(
    log: list[tuple[int, str]], window: int, slack: int, data: st.DataObject
) -> None:
    # a batch of 8 spans at most 24 offsets: the rewind stays within the slack, and
    # a small window and slack make old entries go, so eviction is exercised too
    expected = reference(log, window)
    records = [record(o, e) for o, e in log]
    check = DuplicateCheck(window, slack)
    committed = 0  # index into records
    while committed < len(records):
        size = data.draw(st.integers(1, 8), label="batch")
        batch = records[committed : committed + size]
        before = check  # what the runner keeps to rewind to
        got = [verdict(check, r) for r in batch]
        assert got == [expected[r.offset] for r in batch]
        outcome = data.draw(st.sampled_from(["commit", "abort", "restart"]), label="outcome")
        if outcome == "abort":  # rewind: the same records again, from the state before
            check = before
            assert [verdict(check, r) for r in batch] == got
        committed += len(batch)
        if outcome == "restart":  # a new instance recovers from the committed offset
            at = records[committed].offset if committed < len(records) else log[-1][0] + 1
            reader = Reader(records, at)
            check = DuplicateCheck.recover([(TOPIC, 0)], reader, window, slack)
            assert reader.reads == ([] if window == 0 else [(max(0, at - window), at)])


def test_the_refusal_names_the_earlier_offset_and_only_that_partition_counts() -> None:
    check = DuplicateCheck(100)
    check.check(record(3, IDS[0]))
    check.check(record(4, IDS[0], partition=1))  # another partition: another window
    with pytest.raises(ValidationError, match=r"at offset 3 of t\.actions/0, 4 offsets earlier"):
        check.check(record(7, IDS[0]))
    # the refused record at 7 counts too: 104 is 101 offsets after 3 but 97 after 7
    with pytest.raises(ValidationError, match="at offset 7"):
        check.check(record(104, IDS[0]))
    check.check(record(205, IDS[0]))  # 101 after 104: out of the window, admitted


def test_a_refused_duplicate_still_counts_in_the_window() -> None:
    check = DuplicateCheck(10)
    check.check(record(0, IDS[1]))
    with pytest.raises(ValidationError, match="at offset 0"):
        check.check(record(8, IDS[1]))
    # 12 is 12 after 0 but 4 after the refused 8: still a duplicate, of 8
    with pytest.raises(ValidationError, match="at offset 8"):
        check.check(record(12, IDS[1]))


def test_memory_is_bounded_and_a_rewind_past_the_slack_is_refused() -> None:
    ids = RecentIds(50, slack=50)
    for offset in range(10_000):
        ids.observe(offset, f"id-{offset}")
    assert len(ids) <= 101
    assert ids.observe(9_990, "id-9990") is None  # within the slack: fine
    with pytest.raises(RuntimeError, match="rewind"):
        ids.observe(9_800, "id-9800")
    with pytest.raises(RuntimeError, match="two different logs"):
        ids.observe(9_999, "someone-else")


def _admitted_by_both(records: list[InputRecord]) -> tuple[set[int], set[int]]:
    key = LocalEd25519Signer(hashlib.sha256(b"unit").digest(), "unit")
    signer = ChainSigner(key, [TOPIC], "t.chain", 3, dedup_window=5)
    sentinel = SentinelProcessor(TOPIC, "t.policies", "t.checks", dedup_window=5)
    chained, decided = set(), set()
    s_state, t_state = signer.initial(), sentinel.initial()
    for r in records:
        try:
            s_state, _ = signer.step(s_state, r)
            chained.add(r.offset)
        except ValidationError:
            pass
        try:
            t_state, _ = sentinel.step(t_state, r)
            decided.add(r.offset)
        except ValidationError:
            pass
    return chained, decided


@settings(max_examples=60, deadline=None)
@given(log=logs)
def test_signer_and_sentinel_refuse_the_same_duplicates(log: list[tuple[int, str]]) -> None:
    records = [record(o, e) for o, e in log]
    chained, decided = _admitted_by_both(records)
    assert chained == decided
    assert chained == {o for o, dup in reference(log, 5).items() if dup is None}


def test_the_window_is_a_setting() -> None:
    assert Settings.from_env({}).dedup_window == 10_000
    assert Settings.from_env({"KERNEL_DEDUP_WINDOW": "0"}).dedup_window == 0
    with pytest.raises(ConfigError, match="KERNEL_DEDUP_WINDOW"):
        Settings.from_env({"KERNEL_DEDUP_WINDOW": "-1"})
    off = DuplicateCheck(0)
    off.check(record(0, IDS[0]))
    off.check(record(1, IDS[0]))  # 0: nothing is refused
