"""The processor contract: a pure step over decoded records.

A processor never touches Kafka or Postgres. A runner (``streams/kafka/``)
owns the consumer, the producer and the transaction, decodes each record,
calls :meth:`Processor.step`, encodes and produces the outputs, and commits
the input offsets with them. Replay and unit tests drive the same step with no
broker at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from schemas.errors import KernelError
from schemas.events import Event
from schemas.positions import LogPosition

__all__ = [
    "BackendUnavailableError",
    "BroadcastProcessor",
    "InputRecord",
    "LogReader",
    "OutputRecord",
    "Processor",
]


class BackendUnavailableError(KernelError):
    """A step could not reach a service it calls (an HSM, a KMS): the record is not at fault.

    A runner never dead-letters a record for this: it aborts the batch and runs
    it again after a pause, as when Kafka is away, and stops the worker (for its
    supervisor to restart) only if the service stays away past its recovery budget.
    """


S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class InputRecord:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    event: Event

    @property
    def position(self) -> LogPosition:
        return LogPosition(self.topic, self.partition, self.offset)


@dataclass(frozen=True, slots=True)
class OutputRecord:
    topic: str
    key: bytes
    event: Event
    partition: int | None = None  # None: the producer's partitioner picks by key


class LogReader(Protocol):
    """Read-only access to committed records, for recovering state on start."""

    def partitions(self, topic: str) -> list[int]: ...

    def read(
        self, topic: str, partition: int, start: int, end: int | None = None
    ) -> Sequence[InputRecord]:
        """Committed, decodable records from ``start`` to ``end`` (exclusive) or the end."""
        ...

    def read_keyed(
        self, topic: str, partition: int, start: int, end: int, keys: frozenset[bytes]
    ) -> Sequence[InputRecord]:
        """Like :meth:`read`, only the records whose Kafka key is in ``keys``.

        A reader filters on the key *before* decoding, so scanning a long range
        for a few keys costs a read of the range, not a decode of every record
        (the chain signer looking for its chains' heads).
        """
        ...

    def end_offset(self, topic: str, partition: int) -> int: ...

    def committed(self, topic: str, partition: int) -> int:
        """The processor's committed position on one of its *input* partitions (0 if none).

        ``recover`` that reads its own input (a checkpointer over the chain
        topic, a policy set folded from the policies topic) must stop here: the
        records after it will be consumed again.
        """
        ...


class Processor(Protocol[S]):
    """A pure stream step.

    ``name`` is the consumer group and the transactional id prefix.
    ``recover`` runs when partitions are assigned, before any ``step``: it
    rebuilds the state from committed output (the runner commits input
    offsets in the same transaction as outputs, so the two always agree).
    ``step`` must not mutate ``state``: on an aborted transaction the runner
    rewinds to the state it held before the batch.
    """

    name: str
    input_topics: Sequence[str]

    def recover(self, assigned: Sequence[tuple[str, int]], reader: LogReader) -> S: ...

    def step(self, state: S, record: InputRecord) -> tuple[S, Sequence[OutputRecord]]: ...


class BroadcastProcessor(Processor[S], Protocol[S]):
    """A processor that also needs every record of some topics on every instance.

    ``input_topics`` are split across instances by the consumer group;
    ``broadcast_topics`` are read whole by each instance, outside the group and
    never committed. After each ``recover`` the runner folds them from the
    beginning to their current end with ``absorb``, and before each
    transaction it absorbs whatever arrived since, in partition order.
    ``absorb`` is pure and has no outputs (it must not mutate ``state``).
    """

    broadcast_topics: Sequence[str]

    def absorb(self, state: S, record: InputRecord) -> S: ...
