"""Did the transactional runners' abort/rewind path run? Their own metric says.

A log line "aborting transaction" is written *before* the abort, so it also
counts aborts that then failed (and killed the worker). The runner counts an
abort only once it succeeded and rewound (``stats.aborts``), and
``TransactionalRunnerMetrics`` publishes that as
``kernel_transactions_total{result="abort"}`` at the next committed batch: an
abort the worker went on from. Each worker process serves it on its own
metrics port; this scrapes them every ``interval_s`` and keeps, per process,
the highest value seen (a kill -9 takes the process's counters with it).
"""

from __future__ import annotations

import re
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["AbortScraper"]

_ABORTS = re.compile(r"^kernel_transactions_total\{([^}]*)\}\s+([0-9.eE+]+)$", re.M)


def aborts_in(text: str) -> dict[str, float]:
    """``processor -> aborts`` from one Prometheus exposition."""
    out: dict[str, float] = {}
    for labels, value in _ABORTS.findall(text):
        if 'result="abort"' in labels:
            m = re.search(r'processor="([^"]*)"', labels)
            if m:
                out[m.group(1)] = out.get(m.group(1), 0.0) + float(value)
    return out


@dataclass
class AbortScraper:
    """``targets()`` lists (process key, metrics port) of the live workers."""

    targets: Callable[[], list[tuple[str, int]]]
    interval_s: float = 2.0
    seen: dict[tuple[str, str], float] = field(default_factory=dict)  # (process, processor)
    scrapes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    errors: list[str] = field(default_factory=list)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aborts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def scrape_once(self) -> None:
        for key, port in self.targets():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    text = r.read().decode()
            except OSError:
                continue  # starting, killed, or busy: the next scrape will do
            self.scrapes += 1
            for processor, n in aborts_in(text).items():
                k = (key, processor)
                self.seen[k] = max(self.seen.get(k, 0.0), n)

    def total(self) -> int:
        return int(sum(self.seen.values()))

    def by_processor(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (_key, processor), n in self.seen.items():
            out[processor] = out.get(processor, 0) + int(n)
        return out

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval_s):
                self.scrape_once()
        except Exception as exc:
            self.errors.append(f"aborts: {exc!r}")
