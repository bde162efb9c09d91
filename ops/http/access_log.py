"""Every refused request is an ``accessDenied`` event on the log, and a flood cannot fill it.

Each refusal is recorded on the ``access`` topic (audited: the signer chains
it like any action) unless its source -- the principal, else the client
address -- is over its budget: a token bucket per source (``per_source_rate``
a second, bursts of ``burst``) and one for all sources together
(``total_rate``), so neither one noisy client nor many can turn refusals into
a write amplifier. A refusal over budget is counted, not lost: the source's
next recorded refusal carries ``suppressed`` = how many were not recorded
since its previous one, and ``kernel_access_denied_total`` counts every one.
Recording never delays the answer: the event is published in the background,
and a log that is down costs a warning line, not the request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ops import metrics
from ops.http.access import Refusal
from schemas.events import Event, new_event
from schemas.positions import LogPosition

__all__ = ["AccessLog", "Bucket", "EventLog"]

log = logging.getLogger(__name__)


class EventLog(Protocol):
    """An asynchronous, acknowledged publisher (the API's: ``Kernel.async_log``)."""

    async def publish(self, events: list[Event], topic: str | None = None) -> list[LogPosition]: ...

    def close(self) -> None: ...


@dataclass
class Bucket:
    rate: float
    burst: float
    tokens: float = -1.0
    stamp: float = 0.0

    def take(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.stamp = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class _Source:
    bucket: Bucket
    suppressed: int = 0


@dataclass
class AccessLog:
    make_log: Callable[[], EventLog]
    topic: str
    per_source_rate: float = 1.0
    burst: float = 10.0
    total_rate: float = 20.0
    max_sources: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _log: EventLog | None = None
    _total: Bucket = field(init=False)
    _sources: OrderedDict[str, _Source] = field(default_factory=OrderedDict)
    _pending: set[asyncio.Task[Any]] = field(default_factory=set)
    _closed: bool = False

    def __post_init__(self) -> None:
        self._total = Bucket(self.total_rate, self.total_rate * 2)

    def refused(self, scope: dict[str, Any], refusal: Refusal) -> None:
        """Count ``refusal``; record it on the log if its source is within budget."""
        metrics.ACCESS_DENIED.labels(str(refusal.status)).inc()
        principal = refusal.principal
        client = scope.get("client")
        remote = f"{client[0]}:{client[1]}" if client else None
        source_key = principal.name if principal else (client[0] if client else "unknown")
        source = self._source(source_key)
        now = self.clock()
        if not (source.bucket.take(now) and self._total.take(now)):
            source.suppressed += 1
            metrics.ACCESS_DENIED_UNRECORDED.inc()
            return
        suppressed, source.suppressed = source.suppressed, 0
        event = new_event(
            "accessDenied",
            principal.name if principal else "anonymous",
            source_key,
            {
                "door": "http",
                "method": str(scope.get("method", "")),
                "path": str(scope.get("path", ""))[:512],
                "status": refusal.status,
                "reason": refusal.reason[:512],
                "principal": principal.name if principal else None,
                "authMethod": principal.method if principal else None,
                "remote": remote,
                "suppressed": suppressed,
            },
        )
        task = asyncio.get_running_loop().create_task(self._publish(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _source(self, key: str) -> _Source:
        found = self._sources.get(key)
        if found is None:
            found = self._sources[key] = _Source(Bucket(self.per_source_rate, self.burst))
            while len(self._sources) > self.max_sources:  # a flood of new addresses
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(key)
        return found

    async def _publish(self, event: Event) -> None:
        if self._closed:
            log.warning("access event not recorded: the API is shutting down")
            return
        try:
            if self._log is None:
                self._log = self.make_log()
            await self._log.publish([event], self.topic)
        except Exception as exc:  # the answer is already on its way; say so once here
            log.warning("access event not recorded: %s: %s", type(exc).__name__, exc)

    async def drain(self) -> None:
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=10)

    async def aclose(self) -> None:
        """Record what is on its way, then close (the app's shutdown)."""
        await self.drain()
        self.close()

    def close(self) -> None:
        self._closed = True
        if self._log is not None:
            self._log.close()
            self._log = None
