"""The load a run carries: SDK publishes at a steady rate and sync checks over HTTP.

Every publish is accounted for: a batch the SDK acknowledged is *acked* (it
must end up on the log and in every projection); a batch that raised is
*uncertain* (it may or may not be on the log -- the end check takes the log's
word for it and never republishes, so no duplicate is ours). A sync check
answered 200 names a policyCheckId that must be on the log and in
``policy_checks``; a 503 recorded nothing; a connection error is unknown.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from ops.bootstrap import Kernel
from schemas.events import Event, new_event
from streams.kafka.producer import Producer
from tests import identity

__all__ = ["CheckTraffic", "Publisher", "probe_subjects"]


def _action(subject: str, amount: int) -> Event:
    return new_event(
        "kernelAction",
        "svc",
        subject,
        {"action": "payments.send", "context": {"amount": amount}},
    )


def probe_subjects(partitions: int) -> list[str]:
    """One subject per actions partition (librdkafka's default partitioner: crc32 % n)."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < partitions:
        subject = f"probe-{i}"
        found.setdefault(zlib.crc32(subject.encode()) % partitions, subject)
        i += 1
    return [found[p] for p in range(partitions)]


@dataclass
class Publisher:
    """``total`` kernelActions at ``rate`` per second, in small batches, on a thread."""

    kernel: Kernel
    total: int
    rate: float
    batch: int = 10
    acked: list[str] = field(default_factory=list)
    uncertain: list[str] = field(default_factory=list)
    failures: int = 0
    errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _producer: Producer | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    @property
    def attempted(self) -> int:
        with self._lock:
            return len(self.acked) + len(self.uncertain)

    def publish_probes(self, subjects: list[str]) -> list[str]:
        """Publish one probe per subject now (own producer; returns acked ids)."""
        events = [_action(s, 1) for s in subjects]
        producer = self.kernel.producer()
        try:
            producer.publish_batch(events)
        except Exception:
            with self._lock:
                self.uncertain.extend(e.event_id for e in events)
            return []
        finally:
            producer.close()
        ids = [e.event_id for e in events]
        with self._lock:
            self.acked.extend(ids)
        return ids

    def _run(self) -> None:
        try:
            sent = 0
            started = time.monotonic()
            while sent < self.total:
                n = min(self.batch, self.total - sent)
                events = [
                    _action(f"acct-{(sent + i) % 37}", (sent + i) * 7 % 2000) for i in range(n)
                ]
                self._publish(events)
                sent += n
                wait = started + sent / self.rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
        except Exception as exc:
            self.errors.append(f"publisher: {exc!r}")
        finally:
            if self._producer is not None:
                self._close_producer()

    def _publish(self, events: list[Event]) -> None:
        if self._producer is None:
            self._producer = self.kernel.producer()
        try:
            self._producer.publish_batch(events)
        except Exception:
            self.failures += 1
            with self._lock:
                self.uncertain.extend(e.event_id for e in events)
            self._close_producer()  # a fresh producer after a broker fault
            time.sleep(0.5)
            return
        with self._lock:
            self.acked.extend(e.event_id for e in events)

    def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):  # close flushes; a dead broker may refuse
                producer.close()


@dataclass
class CheckTraffic:
    """POST /sentinel/check at ``rate`` per second until stopped."""

    port: int
    rate: float
    ok: dict[str, str] = field(default_factory=dict)  # requestId -> policyCheckId
    ok_times: list[float] = field(default_factory=list)
    unavailable: int = 0  # 503: the log did not take it, nothing recorded
    other: dict[int, int] = field(default_factory=dict)  # other statuses
    connection_errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    errors: list[str] = field(default_factory=list)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="checks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def first_ok_after(self, t0: float) -> float | None:
        return next((t for t in list(self.ok_times) if t > t0), None)

    def _run(self) -> None:
        i = 0
        try:
            while not self._stop.wait(1.0 / self.rate):
                i += 1
                self._one({"action": "payments.send", "actor": f"sync-{i % 5}",
                           "context": {"amount": i * 13 % 2000},
                           "requestId": str(uuid.uuid4())})  # fmt: skip
        except Exception as exc:
            self.errors.append(f"checks: {exc!r}")

    def _one(self, body: dict[str, Any]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            conn.request(
                "POST",
                "/sentinel/check",
                orjson.dumps(body),
                {"content-type": "application/json", **identity.AUTH},
            )
            r = conn.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException):
            self.connection_errors += 1
            return
        finally:
            conn.close()
        if r.status == 200:
            self.ok[body["requestId"]] = orjson.loads(data)["policyCheckId"]
            self.ok_times.append(time.monotonic())
        elif r.status == 503:
            self.unavailable += 1
        else:
            self.other[r.status] = self.other.get(r.status, 0) + 1
