"""Duplicate eventIds: the ids of the last N offsets of one input partition.

The same ``eventId`` published twice (a retrying producer, a replayed file)
must not become two audit rows or two decisions. The chain signer and the
sentinel both refuse a record whose eventId was already at one of the ``N``
offsets before it **in the same partition** (``KERNEL_DEDUP_WINDOW``, default
10,000; 0 turns the check off): the refusal is a :class:`ValidationError`
naming the earlier offset, so the runner dead-letters the record and goes on.
A duplicate further back than the window, or in another partition, is not
caught: the window bounds memory and start-up time, and a producer keys the
retries of one event alike, so they land in one partition.

**Which records count.** Every record the step is given -- every record of the
partition that decoded -- whatever the verdict on it (a record refused for
another reason, or itself a duplicate, still counts). Only this definition is
a function of the partition alone: "the ids of the records that were
accepted" would depend on verdicts before the window, which a restarted
worker cannot know without reading further back, and so on. The signer reads
the actions topic among its inputs and the sentinel reads exactly the actions
topic, with the same codec, so on each actions partition both see the same
records and reach the same verdict (``docs/decisions/0010``).

**Recovery.** ``recover`` reads the input partition from ``max(0, committed -
N)`` to ``committed`` through the LogReader: the records the next step's
window covers, no more (``O(N)`` per assigned partition at start-up).

**Rewinding.** A runner aborts a transaction, restores the state it held
before the batch and steps the same records again, so ``step`` must not
change what the earlier state answers. :class:`RecentIds` is therefore not a
set of ids "so far" but a memo of facts about an immutable log -- "offset
``o`` holds eventId ``x``" -- and a query about offset ``o`` reads only the
facts at offsets ``[o - N, o)``. A fact learned by an aborted batch is still
true after the rewind (the log did not change), and facts at or after ``o``
are never read for ``o``: the state before the batch answers every query the
rewound steps make exactly as it did. This also lets a step record the id of
a record it then *refuses* (the runner keeps the state it had when a step
raises), which a copy-on-write window could not. Learning and checking are
O(1) dict operations; entries more than ``N + slack`` offsets behind the
newest are dropped, ``slack`` = ``max(N, 10,000)`` offsets, so a rewind of up
to ``slack`` offsets (a runner's batch is 2,000 records) still finds every
fact it needs; a deeper one is a runner bug and raises rather than answer
wrongly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from schemas.errors import ValidationError
from streams.processor import InputRecord, LogReader

__all__ = ["DEFAULT_WINDOW", "MIN_SLACK", "DuplicateCheck", "RecentIds"]

DEFAULT_WINDOW = 10_000
MIN_SLACK = 10_000  # offsets a rewind may go back; a batch is at most 2,000 records


class RecentIds:
    """The eventIds at the last ``window`` offsets of one partition (see the module doc)."""

    __slots__ = (
        "_high",
        "_ids",
        "_keep",
        "_known_from",
        "_latest",
        "_order",
        "_prev",
        "window",
    )

    def __init__(
        self, window: int = DEFAULT_WINDOW, *, known_from: int = 0, slack: int | None = None
    ) -> None:
        if window < 0:
            raise ValueError(f"the dedup window must be >= 0, got {window}")
        self.window = window
        self._keep = window + (max(window, MIN_SLACK) if slack is None else slack)
        self._ids: dict[int, str] = {}  # offset -> eventId
        self._prev: dict[int, int] = {}  # offset -> the previous offset of its eventId, if known
        self._latest: dict[str, int] = {}  # eventId -> its newest offset
        self._order: deque[int] = deque()  # offsets learned, ascending
        self._high = -1
        # every record at offsets >= known_from has been learned (nothing before it)
        self._known_from = known_from

    def __len__(self) -> int:
        return len(self._ids)

    def observe(self, offset: int, event_id: str) -> int | None:
        """Learn that ``offset`` holds ``event_id``; the offset of the same id before it
        within the window, or None."""
        if self.window == 0:
            return None
        if max(0, offset - self.window) < self._known_from:
            raise RuntimeError(
                f"offset {offset}: the dedup window no longer holds offsets from "
                f"{offset - self.window} (it starts at {self._known_from}); a rewind "
                "deeper than the window's slack"
            )
        prev = self.learn(offset, event_id)
        if prev is not None and offset - prev <= self.window:
            return prev
        return None

    def learn(self, offset: int, event_id: str) -> int | None:
        """Record that ``offset`` holds ``event_id`` (no verdict: recovery); the previous
        offset of that id this window knows, however far back."""
        known = self._ids.get(offset)
        if known is not None:  # the same record again: a rewind, or a test stepping twice
            if known != event_id:
                raise RuntimeError(
                    f"offset {offset} held eventId {known}, now {event_id}: "
                    "one window was given two different logs"
                )
            return self._prev.get(offset)
        if offset < self._high:
            raise RuntimeError(
                f"offset {offset} arrived after offset {self._high}: a partition's "
                "records must be stepped in offset order"
            )
        prev = self._latest.get(event_id)
        self._ids[offset] = event_id
        if prev is not None:
            self._prev[offset] = prev
        self._latest[event_id] = offset
        self._order.append(offset)
        self._high = offset
        self._evict()
        return prev

    def _evict(self) -> None:
        floor = self._high - self._keep
        order = self._order
        while order and order[0] < floor:
            old = order.popleft()
            event_id = self._ids.pop(old)
            self._prev.pop(old, None)
            if self._latest.get(event_id) == old:
                del self._latest[event_id]
            self._known_from = old + 1


@dataclass
class DuplicateCheck:
    """A :class:`RecentIds` per input partition, and the refusal a duplicate gets."""

    window: int = DEFAULT_WINDOW
    slack: int | None = None  # RecentIds' (tests shrink it to exercise eviction)
    _partitions: dict[tuple[str, int], RecentIds] = field(default_factory=dict)

    @classmethod
    def recover(
        cls,
        assigned: Sequence[tuple[str, int]],
        reader: LogReader,
        window: int = DEFAULT_WINDOW,
        slack: int | None = None,
    ) -> DuplicateCheck:
        """The windows of ``assigned`` as of this group's committed positions on them."""
        check = cls(window, slack)
        if window == 0:
            return check
        for topic, partition in assigned:
            end = reader.committed(topic, partition)
            start = max(0, end - window)
            ids = RecentIds(window, known_from=start, slack=slack)
            check._partitions[(topic, partition)] = ids
            for rec in reader.read(topic, partition, start, end):
                ids.learn(rec.offset, rec.event.event_id)
        return check

    def check(self, record: InputRecord) -> None:
        """Learn ``record``'s id; :class:`ValidationError` if it is a duplicate.

        A partition not recovered (a pure driver that skipped ``recover``)
        starts empty, as if its log began with this record.
        """
        if self.window == 0:
            return
        key = (record.topic, record.partition)
        ids = self._partitions.get(key)
        if ids is None:
            ids = self._partitions[key] = RecentIds(self.window, slack=self.slack)
        earlier = ids.observe(record.offset, record.event.event_id)
        if earlier is not None:
            raise ValidationError(
                f"{record.event.event_id} is a duplicate: the same eventId is at offset "
                f"{earlier} of {record.topic}/{record.partition}, {record.offset - earlier} "
                f"offsets earlier (dedup window {self.window}); not chained or decided twice",
                field="eventId",
            )
