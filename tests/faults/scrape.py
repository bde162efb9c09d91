"""What the workers say of themselves, scraped from each process's metrics port.

Three questions of the run are answered from the workers' own counters:
did the abort/rewind path run, did both instances of every scaled worker do
work (``kernel_events_processed_total``), and did the auditors verify without
a failure (``kernel_audit_verifications_total{result}``).

Aborts: a log line "aborting transaction" is written *before* the abort, so it also
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

__all__ = ["WorkerMetrics", "aborts_in", "counter_in"]


def counter_in(text: str, name: str, label: str, **where: str) -> dict[str, float]:
    """``label value -> sum`` of counter ``name`` (samples matching ``where``) in an exposition."""
    rx = re.compile(rf"^{re.escape(name)}\{{([^}}]*)\}}\s+([0-9.eE+]+)$", re.M)
    out: dict[str, float] = {}
    for labels, value in rx.findall(text):
        if all(f'{k}="{v}"' in labels for k, v in where.items()):
            m = re.search(rf'{label}="([^"]*)"', labels)
            if m:
                out[m.group(1)] = out.get(m.group(1), 0.0) + float(value)
    return out


def aborts_in(text: str) -> dict[str, float]:
    """``processor -> aborts`` from one Prometheus exposition."""
    return counter_in(text, "kernel_transactions_total", "processor", result="abort")


@dataclass
class WorkerMetrics:
    """``targets()`` lists (process key ``worker#instance/start``, metrics port) of live workers."""

    targets: Callable[[], list[tuple[str, int]]]
    interval_s: float = 2.0
    seen: dict[tuple[str, str], float] = field(default_factory=dict)  # (process, processor)
    processed: dict[str, float] = field(default_factory=dict)  # process -> records finished
    verifications: dict[tuple[str, str], float] = field(default_factory=dict)  # (process, result)
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
            done = sum(counter_in(text, "kernel_events_processed_total", "processor").values())
            self.processed[key] = max(self.processed.get(key, 0.0), done)
            rounds = counter_in(text, "kernel_audit_verifications_total", "result")
            for result, n in rounds.items():
                k2 = (key, result)
                self.verifications[k2] = max(self.verifications.get(k2, 0.0), n)

    def total(self) -> int:
        return int(sum(self.seen.values()))

    def by_processor(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (_key, processor), n in self.seen.items():
            out[processor] = out.get(processor, 0) + int(n)
        return out

    def processed_by_instance(self) -> dict[str, int]:
        """``worker#instance -> records finished``, summed over that instance's starts."""
        out: dict[str, int] = {}
        for key, n in self.processed.items():
            member = key.split("/", 1)[0]
            out[member] = out.get(member, 0) + int(n)
        return out

    def verifications_by_instance(self) -> dict[str, dict[str, int]]:
        """``auditor#instance -> {ok: n, failed: n}``, summed over that instance's starts."""
        out: dict[str, dict[str, int]] = {}
        for (key, result), n in self.verifications.items():
            per = out.setdefault(key.split("/", 1)[0], {})
            per[result] = per.get(result, 0) + int(n)
        return out

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval_s):
                self.scrape_once()
        except Exception as exc:
            self.errors.append(f"worker metrics: {exc!r}")
