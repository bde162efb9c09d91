"""Publish lag snapshots as Prometheus series, and serve them.

Each snapshot sets the lag gauges of :mod:`ops.metrics` and removes the series
of partitions that are no longer watched -- removing only the stale ones, not
clearing everything, so a scrape between two samples never sees a hole.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from prometheus_client import start_http_server

from ops import metrics
from ops.lag.monitor import LagMonitor, LagSnapshot
from schemas.errors import KernelError

__all__ = ["LagExporter"]

PartitionKey = tuple[str, str, str]


class LagExporter:
    def __init__(self, monitor: LagMonitor) -> None:
        self.monitor = monitor
        self._partitions: set[PartitionKey] = set()
        self._groups: set[str] = set()
        self._members: set[str] = set()
        self._ends: set[tuple[str, str]] = set()

    def publish(self, snapshot: LagSnapshot) -> None:
        partitions: set[PartitionKey] = set()
        groups: set[str] = set()
        members: set[str] = set()
        ends: set[tuple[str, str]] = set()
        for g in snapshot.groups:
            groups.add(g.group)
            metrics.CONSUMER_GROUP_STATUS.labels(g.group).set(int(g.status))
            if g.members is not None:
                members.add(g.group)
                metrics.CONSUMER_GROUP_MEMBERS.labels(g.group).set(g.members)
            for p in g.partitions:
                key = (p.group, p.topic, str(p.partition))
                partitions.add(key)
                ends.add((p.topic, str(p.partition)))
                metrics.CONSUMER_LAG_OFFSETS.labels(*key).set(p.lag)
                metrics.CONSUMER_LAG_SECONDS.labels(*key).set(p.lag_seconds)
                metrics.CONSUMER_LAG_STATUS.labels(*key).set(int(p.status))
                metrics.CONSUMER_COMMITTED_OFFSET.labels(*key).set(p.committed)
                metrics.LOG_END_OFFSET.labels(p.topic, str(p.partition)).set(p.log_end)
        for key in self._partitions - partitions:
            for gauge in (
                metrics.CONSUMER_LAG_OFFSETS,
                metrics.CONSUMER_LAG_SECONDS,
                metrics.CONSUMER_LAG_STATUS,
                metrics.CONSUMER_COMMITTED_OFFSET,
            ):
                gauge.remove(*key)
        for group in self._groups - groups:
            metrics.CONSUMER_GROUP_STATUS.remove(group)
        for group in self._members - members:
            metrics.CONSUMER_GROUP_MEMBERS.remove(group)
        for end in self._ends - ends:
            metrics.LOG_END_OFFSET.remove(*end)
        self._partitions, self._groups, self._ends = partitions, groups, ends
        self._members = members

    def sample_and_publish(self) -> LagSnapshot:
        started = time.perf_counter()
        snapshot = self.monitor.sample()
        metrics.LAG_SAMPLE_DURATION.observe(time.perf_counter() - started)
        self.publish(snapshot)
        return snapshot

    def serve(
        self,
        port: int,
        host: str = "127.0.0.1",
        *,
        stop: threading.Event | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        """Serve ``/metrics`` and sample every interval until ``stop`` is set."""
        stop = stop or threading.Event()
        server, thread = start_http_server(port, addr=host)
        try:
            while not stop.is_set():
                began = time.monotonic()
                try:
                    self.sample_and_publish()
                except KernelError as exc:  # keep serving: the next sample may succeed
                    if on_error is None:
                        raise
                    on_error(exc)
                stop.wait(max(0.0, self.monitor.config.interval_s - (time.monotonic() - began)))
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
