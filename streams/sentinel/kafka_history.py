"""Adapter: a simulation's window of history, read from the actions topic (Kafka).

The window resolves to offset ranges per partition through the offsets
adapter (first offsets, last stable offsets, the time index for ``--since``);
the ranges are read in consume batches by a ``read_committed`` consumer by
assignment (:func:`~streams.kafka.log_reader.committed_batches`: no group,
no commits, so a simulation moves no one's position), decoded, and tallied by
:class:`~streams.sentinel.simulation.SimulationTally`. Reading and evaluating
are one loop per process; with ``workers > 1`` every partition's range is
split into contiguous shares (:func:`~streams.sentinel.simulation.split_ranges`)
and each share is simulated in its own process (spawned: a forked child of a
process holding librdkafka threads is not safe), the tallies merged.

Undecodable records are counted as skipped, never fatal: a simulation reports
on the history there is; the dead-letter path belongs to the sentinel.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from confluent_kafka import Consumer

from schemas.codec import EventCodec
from schemas.errors import KernelError, LogUnavailableError
from schemas.events import Event
from streams.kafka.clients import KafkaClients
from streams.kafka.log_reader import committed_batches, reader_consumer
from streams.kafka.offsets import KafkaOffsets
from streams.sentinel.policy import Policy
from streams.sentinel.simulation import (
    Ranges,
    SimulationTally,
    Window,
    resolve_ranges,
    simulation_set,
    split_ranges,
)

__all__ = ["MIN_PER_WORKER", "HistoryJob", "simulate_history", "window_ranges"]

MIN_PER_WORKER = 20_000  # below this many records a second process costs more than it saves
_BATCH = 5000


def window_ranges(offsets: KafkaOffsets, topic: str, window: Window, now_ms: int) -> Ranges:
    """The window's half-open offset range of each partition of ``topic``."""
    count = offsets.partitions([topic]).get(topic)
    if not count:
        raise LogUnavailableError(f"topic {topic} does not exist; run `kernel topics ensure`")
    tps = [(topic, p) for p in range(count)]
    ends = {p: e.last_stable for (_t, p), e in offsets.ends(tps).items()}
    starts = {p: s for (_t, p), s in offsets.starts(tps).items()}
    at_time = None
    if window.since_ms is not None:
        at_time = offsets.offsets_for_time(topic, ends, now_ms - window.since_ms, ends=ends)
    return resolve_ranges(window, starts, ends, at_time)


@dataclass(frozen=True)
class HistoryJob:
    """What every share of a simulation reads and runs; sent to each worker process.

    ``codec`` builds the codec in the process that reads (a codec holds a
    registry client, which is not sent between processes): a module-level
    function or a ``functools.partial`` of one, so it pickles.
    """

    kafka: KafkaClients | str
    codec: Callable[[], EventCodec]
    topic: str
    live: Sequence[Policy]
    candidate: Policy
    timeout_s: float = 10.0

    def run(self, ranges: Ranges) -> SimulationTally:
        """The tally of ``ranges``, in this process."""
        codec = self.codec()
        policies = simulation_set(self.live, self.candidate)
        tally = SimulationTally(self.candidate.policy_id, self.candidate.version)
        consumer = reader_consumer(self.kafka, "kernel-simulate")
        try:
            for partition, (start, end) in sorted(ranges.items()):
                tally.run(policies, self._decoded(consumer, codec, partition, (start, end), tally))
        finally:
            consumer.close()
        return tally

    def _decoded(
        self,
        consumer: Consumer,
        codec: EventCodec,
        partition: int,
        span: tuple[int, int],
        tally: SimulationTally,
    ) -> Iterator[tuple[int, int, Event]]:
        decode = codec.decode
        start, end = span
        batches = committed_batches(
            consumer, self.topic, partition, start, end, timeout_s=self.timeout_s, batch=_BATCH
        )
        for msgs in batches:
            for msg in msgs:
                try:
                    event = decode(msg.value() or b"", log_ts_ms=msg.timestamp()[1])
                except KernelError:
                    tally.skipped += 1
                    continue
                yield partition, int(msg.offset() or 0), event


def simulate_history(job: HistoryJob, ranges: Ranges, *, workers: int = 2) -> SimulationTally:
    """The tally of the whole window, split over up to ``workers`` processes."""
    size = sum(end - start for start, end in ranges.values())
    parts = max(1, min(workers, size // MIN_PER_WORKER))
    if parts == 1:
        return job.run(ranges)
    slices = split_ranges(ranges, parts)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(slices), mp_context=context) as pool:
        tallies = list(pool.map(job.run, slices))
    total = tallies[0]
    for t in tallies[1:]:
        total.merge(t)
    return total
