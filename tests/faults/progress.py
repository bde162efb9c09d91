"""Where every worker stands, sampled from outside: "processing again" is its position moving.

The transactional workers (signer, sentinel, checkpointer) commit their input
offsets to their consumer group inside each transaction; the projectors keep
theirs in ``projection_checkpoints`` in the same Postgres transaction as their
rows. Both are read here every ``interval_s`` into a timeline, from which
:meth:`Progress.served_again` answers "how long after t0 did every partition
that had work move past where it stood at t0".

The baseline is the first sample at or after t0 (a dead worker cannot commit,
and a restarted one needs seconds to start), so a figure errs by at most one
sampling interval.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
from confluent_kafka import Consumer, TopicPartition

from ops.bootstrap import Kernel
from streams.kafka.log_reader import committed_batches, reader_consumer

__all__ = ["Arrivals", "Progress", "Sample"]

Key = tuple[str, str, int]  # (worker, topic, partition)

# The samplers' own clients are expected to fail while the broker is down; their
# connection errors are noise in the run's output, not findings.
_QUIET = logging.getLogger("tests.faults.librdkafka")
_QUIET.propagate = False
_QUIET.addHandler(logging.NullHandler())


@dataclass(frozen=True)
class Sample:
    at: float
    positions: dict[Key, int]
    ends: dict[tuple[str, int], int]


@dataclass
class Progress:
    kernel: Kernel
    interval_s: float = 0.5
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _pg: psycopg.Connection[Any] | None = None

    def __post_init__(self) -> None:
        n = self.kernel.names
        prefix = n.prefix
        # worker -> (its consumer group, the input topics that carry the run's traffic)
        self.groups = {
            "signer": (f"{prefix}chain-signer", [n.actions, n.policy_checks]),
            "sentinel": (f"{prefix}sentinel", [n.actions]),
            "checkpointer": (f"{prefix}chain-checkpointer", [n.chain]),
        }
        # worker -> (projection name, its input topic)
        self.projections = {
            "audit-projector": ("audit", n.chain),
            "sentinel-projector": ("policy_checks", n.policy_checks),
        }
        self.topics = sorted({n.actions, n.policy_checks, n.chain})

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    # -- sampling -----------------------------------------------------------------
    def _run(self) -> None:
        bootstrap = self.kernel.settings.kafka_bootstrap
        base = {"bootstrap.servers": bootstrap, "enable.auto.commit": False,
                "socket.timeout.ms": 3000, "logger": _QUIET}  # fmt: skip
        consumers = {w: Consumer({**base, "group.id": g}) for w, (g, _) in self.groups.items()}
        ends = Consumer({**base, "group.id": f"faults-ends-{uuid.uuid4()}"})
        parts: dict[str, list[int]] = {}
        try:
            while not self._stop.wait(self.interval_s):
                positions: dict[Key, int] = {}
                end_offsets: dict[tuple[str, int], int] = {}
                with contextlib.suppress(Exception):  # broker down: no Kafka figures now
                    if not parts:
                        md = ends.list_topics(timeout=3)
                        parts = {t: sorted(md.topics[t].partitions) for t in self.topics}
                    for worker, (_group, topics) in self.groups.items():
                        tps = [TopicPartition(t, p) for t in topics for p in parts[t]]
                        for tp in consumers[worker].committed(tps, timeout=3):
                            if tp.offset >= 0:
                                positions[(worker, tp.topic, tp.partition)] = tp.offset
                    for t in self.topics:
                        for p in parts[t]:
                            _lo, hi = ends.get_watermark_offsets(TopicPartition(t, p), timeout=3)
                            end_offsets[(t, p)] = hi
                try:
                    positions.update(self._projection_positions())
                except psycopg.Error:  # Postgres down: none from it this round
                    self._close_pg()
                self.samples.append(Sample(time.monotonic(), positions, end_offsets))
        except Exception as exc:
            self.errors.append(f"progress: {exc!r}")
        finally:
            for c in [*consumers.values(), ends]:
                with contextlib.suppress(Exception):
                    c.close()
            self._close_pg()

    def _close_pg(self) -> None:
        pg, self._pg = self._pg, None
        if pg is not None:
            with contextlib.suppress(Exception):
                pg.close()

    def _projection_positions(self) -> dict[Key, int]:
        if self._pg is None or self._pg.closed:
            url = self.kernel.settings.database_url
            self._pg = psycopg.connect(url, connect_timeout=2, autocommit=True)
        out: dict[Key, int] = {}
        rows = self._pg.execute(
            "SELECT projection, topic, partition, next_offset FROM projection_checkpoints"
        ).fetchall()
        for worker, (projection, topic) in self.projections.items():
            for name, t, p, off in rows:
                if name == projection and t == topic:
                    out[(worker, t, p)] = int(off)
        return out

    # -- questions ------------------------------------------------------------------
    def served_again(self, worker: str, t0: float, arrivals: Arrivals) -> float | None:
        """Seconds ``worker`` left available work unserved after ``t0``; None: never served.

        For each of its partitions: from ``t0`` -- or from when the first committed
        record past where it stood became visible, if that was later (its upstream
        was down too) -- until its position moved. Offsets alone cannot say whether
        a partition had work: aborted transactions and commit markers take offsets
        a read_committed consumer never sees, so the work is the committed records
        themselves (``arrivals``, read from the log after the run), and a record is
        visible from the first sample whose last stable offset is past it.
        """
        samples = list(self.samples)
        after = [s for s in samples if s.at >= t0]
        base = next((s for s in after if any(k[0] == worker for k in s.positions)), None)
        if base is None:
            return None
        worst = 0.0
        for key in [k for k in base.positions if k[0] == worker]:
            b = base.positions[key]
            first = arrivals.first_at_or_after(key[1], key[2], b)
            if first is None:
                continue  # nothing committed past its position: nothing to serve
            tp = (key[1], key[2])
            visible = next((s.at for s in samples if s.ends.get(tp, -1) > first), None)
            if visible is None:
                continue  # it became visible after the sampling ended
            moved = next((s.at for s in after if s.positions.get(key, -1) > b), None)
            if moved is None:
                return None  # it had work and never moved
            worst = max(worst, moved - max(t0, visible))
        return worst


class Arrivals:
    """Per partition, the offsets of its committed records (read after the run)."""

    def __init__(self, offsets: dict[tuple[str, int], list[int]]) -> None:
        self._offsets = {k: sorted(v) for k, v in offsets.items()}

    def first_at_or_after(self, topic: str, partition: int, offset: int) -> int | None:
        offsets = self._offsets.get((topic, partition), [])
        i = bisect.bisect_left(offsets, offset)
        return offsets[i] if i < len(offsets) else None

    @classmethod
    def read(cls, bootstrap: str, topics: list[str]) -> Arrivals:
        """Every committed record's offset (values are not decoded)."""
        consumer = reader_consumer(bootstrap, "faults-arrivals")
        out: dict[tuple[str, int], list[int]] = {}
        try:
            md = consumer.list_topics(timeout=10)
            for topic in topics:
                for p in sorted(md.topics[topic].partitions):
                    _lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                    got = out.setdefault((topic, p), [])
                    for msgs in committed_batches(consumer, topic, p, 0, hi, timeout_s=30):
                        got.extend(int(m.offset() or 0) for m in msgs)
        finally:
            consumer.close()
        return cls(out)
