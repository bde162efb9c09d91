"""Signed Merkle checkpoints over each chain (beyond the runbook).

The checkpointer consumes the chain topic and keeps, per chain, the RFC 6962
compact range of its link hashes (O(log n) hashes). Every ``every`` links, or
when a link was written ``interval_ms`` after the last checkpoint's link, it
emits a ``chainCheckpoint``: the Merkle root, tree size and head hash as a
C2SP signed note. Both rules read only the chain topic, never the clock, so
a checkpointer replayed over the same chain topic emits the same checkpoints.

**Which time.** The time rule reads each link record's Kafka timestamp --
when the signer wrote the link, our own clock -- not the audited event's
``ts``, which its producer chose. Comparing event times, one event stamped
year 9999 made every later link look older than the last checkpoint and
switched the time rule of its chain off for good (the input contract now
refuses such a ``ts``, but a chain must not depend on that), and events
stamped alternately now and an hour ahead would have forced a checkpoint per
link. The link's own time is monotonic up to the signer's clock; should that
clock step back by more than an interval (or a record carry no timestamp, when
the event's ``ts`` stands in), the rule checkpoints and restarts from there
rather than wait for the clock to catch up: an outlier costs at most one
extra checkpoint, never a stall. A checkpoint carries that same time.

An auditor holding a checkpoint checks one record's inclusion, or that a newer
checkpoint extends an older one, in O(log n) hashes (``kernel audit-prove``,
``kernel audit-verify --checkpoint``).

Recovery folds the chain partitions from the start up to the committed
position (no output): O(chain length) at start-up. Persisting the compact
range in the checkpoint would make it O(records since the last checkpoint);
not done yet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from schemas.events import Event
from streams.chain.errors import ChainError
from streams.chain.merkle import CompactRange
from streams.chain.note import ChainCheckpoint
from streams.chain.signer import record_id
from streams.chain.signing import Signer
from streams.processor import InputRecord, LogReader, OutputRecord

__all__ = ["ChainState", "Checkpointer", "link_time"]


@dataclass(frozen=True)
class ChainState:
    tree: CompactRange
    head_hash: str
    last_size: int  # tree size of the last checkpoint emitted
    last_ts_ms: int  # the time-rule clock (link_time) of the last checkpoint

    @property
    def size(self) -> int:
        return self.tree.size


States = Mapping[str, ChainState]


def link_time(record: InputRecord) -> int:
    """The time rule's clock for one chain link: when it was written to the chain topic.

    The record's Kafka timestamp (the signer's clock at produce time); the
    link's event ``ts`` only when the record has none (``-1``).
    """
    return record.timestamp_ms if record.timestamp_ms >= 0 else record.event.ts_ms


@dataclass
class Checkpointer:
    signer: Signer
    chain_topic: str
    checkpoint_topic: str
    every: int = 1000
    interval_ms: int = 60_000
    name: str = "chain-checkpointer"

    @property
    def input_topics(self) -> Sequence[str]:
        return [self.chain_topic]

    def recover(self, assigned: Sequence[tuple[str, int]], reader: LogReader) -> States:
        states: dict[str, ChainState] = {}
        for topic, partition in assigned:
            for rec in reader.read(topic, partition, 0, reader.committed(topic, partition)):
                chain = rec.event.body["chain"]
                states[chain], _ = self._advance(states.get(chain), rec.event, link_time(rec))
        return states

    def step(self, state: States, record: InputRecord) -> tuple[States, list[OutputRecord]]:
        chain = record.event.body["chain"]
        current = state.get(chain)
        if current is not None and record.event.body["seq"] < current.size:
            return state, []  # already folded in
        now = link_time(record)
        new, due = self._advance(current, record.event, now)
        new_states = dict(state)
        new_states[chain] = new
        if not due:
            return new_states, []
        return new_states, [self._checkpoint(chain, new, now)]

    def _advance(
        self, current: ChainState | None, link: Event, now_ms: int
    ) -> tuple[ChainState, bool]:
        body: Mapping[str, Any] = link.body
        if current is None:
            current = ChainState(CompactRange(), "", 0, now_ms)
        if body["seq"] != current.size:
            raise ChainError(f"{body['chain']}: link {body['seq']} follows {current.size - 1}")
        if body["prevHash"] != current.head_hash:
            raise ChainError(f"{body['chain']}: link {body['seq']} does not extend the head")
        tree = CompactRange(current.size, current.tree.subtrees)
        tree.append(bytes.fromhex(body["hash"]))
        state = replace(current, tree=tree, head_hash=body["hash"])
        elapsed = now_ms - current.last_ts_ms
        # a clock far behind the last checkpoint's restarts the rule (module docstring)
        late = elapsed >= self.interval_ms or elapsed <= -self.interval_ms
        due = tree.size % self.every == 0 or late
        if due:
            state = replace(state, last_size=tree.size, last_ts_ms=now_ms)
        return state, due

    def _checkpoint(self, chain: str, state: ChainState, ts_ms: int) -> OutputRecord:
        cp = ChainCheckpoint(chain, state.size, state.tree.root(), state.head_hash)
        event = Event(
            event_id=record_id(f"checkpoint:{chain}", state.size),
            event_type="chainCheckpoint",
            ts_ms=ts_ms,
            actor=self.signer.signer_id,
            subject=chain,
            body={
                "chain": chain,
                "size": state.size,
                "rootHash": cp.body().split("\n")[2],
                "headHash": state.head_hash,
                "signerId": self.signer.signer_id,
                "note": cp.sign(self.signer),
            },
        )
        return OutputRecord(self.checkpoint_topic, chain.encode(), event)
