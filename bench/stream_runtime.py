"""Exactly-once consume-transform-produce: our TransactionalRunner vs faust-streaming.

The same job for every runtime: read N kernel-action events from the 3-partition
actions topic, decode each with our ``EventCodec``, emit one encoded output event
per input to a fresh 3-partition topic. Each runtime runs in its own child process
(imports, group join and transaction setup included), with a fresh consumer group,
so every run reads all N inputs from the start. The parent counts the output topic
with a ``read_committed`` consumer: the clock stops when N committed records are
visible. "start" is launch to the first committed output, "steady" is N over the
time from the first to the last. CPU is the child's user+system time.

- runner: ``TransactionalRunner`` (confluent-kafka, one transaction per poll batch)
  driving a trivial copy :class:`~streams.processor.Processor`.
- faust eos: faust-streaming app, ``processing_guarantee="exactly_once"`` (aiokafka
  transactions), raw bytes serializers, our codec in the agent; faust defaults
  otherwise (commit every 2.8 s or 10,000 records).
- faust eos+tx: the same, with the output topic also consumed by a no-op agent. In
  faust 0.15.3 an agent's send joins a transaction only when the app's consumer has
  metadata for the output topic (``TransactionManager.send`` takes the transactional
  id from the consumer's partition of the *output*); otherwise it goes out on the
  plain producer, outside any transaction. This variant is faust's EOS with its
  outputs actually inside transactions.
- faust alo: the same app at-least-once, for reference.

faust reads our lz4-compressed topics only with ``cramjam`` (aiokafka's codecs),
which the project does not depend on: without it the worker crashes with
``UnsupportedCodecError: Libraries for lz4 compression codec not found``. Install it
beside the venv (``pip install --target /tmp/cramjam cramjam``) and run with
``PYTHONPATH=/tmp/cramjam``.

Runs on the stack named by the environment (``kernel up`` if none runs).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench._table import table
from bench.publish import _events
from ops.bootstrap import bootstrap
from streams.processor import InputRecord, LogReader, OutputRecord

N = 20_000
ROUNDS = 3
TIMEOUT_S = 180.0
STOP_S = 20.0  # SIGTERM, then SIGKILL after this long
KINDS = ("runner", "faust-eos", "faust-eos-tx", "faust-alo")
LABELS = {
    "runner": "TransactionalRunner (confluent-kafka, EOS)",
    "faust-eos": "faust-streaming exactly_once (aiokafka)",
    "faust-eos-tx": "faust exactly_once, outputs in transactions",
    "faust-alo": "faust-streaming at_least_once (reference)",
}


@dataclass
class Copy:
    """The trivial processor: each input event, unchanged, to the output topic.

    The state is a count: the runner treats a ``None`` state as "not recovered yet".
    """

    name: str
    input_topics: Sequence[str]
    out_topic: str

    def recover(self, assigned: Sequence[tuple[str, int]], reader: LogReader) -> int:
        return 0

    def step(self, state: int, record: InputRecord) -> tuple[int, list[OutputRecord]]:
        return state + 1, [OutputRecord(self.out_topic, record.key or b"", record.event)]


@dataclass
class Run:
    kind: str
    total_s: float
    start_s: float
    steady: float
    cpu_s: float
    error: str = ""
    stop_s: float = 0.0
    killed: bool = False

    @property
    def rate(self) -> float:
        return N / self.total_s if not self.error else 0.0


# -- child processes ---------------------------------------------------------
def _worker_runner(prefix: str, src: str, dst: str, group: str) -> None:
    from streams.kafka.transactional_runner import TransactionalRunner  # noqa: PLC0415

    kernel = bootstrap()
    kernel.names.prefix = prefix
    stop: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    runner = TransactionalRunner(
        Copy(group, [src], dst),
        kafka=kernel.kafka,
        codec=kernel.codec,
        names=kernel.names,
    )
    runner.run(lambda: bool(stop))
    runner.close()


def _worker_faust(src: str, dst: str, app_id: str, guarantee: str, drain: bool) -> None:
    import faust  # noqa: PLC0415

    kernel = bootstrap()
    codec = kernel.codec
    with tempfile.TemporaryDirectory(prefix="faust-bench-") as datadir:
        app = faust.App(
            app_id,
            broker=f"kafka://{kernel.settings.kafka_bootstrap}",
            processing_guarantee=guarantee,
            datadir=datadir,
            key_serializer="raw",
            value_serializer="raw",
            topic_partitions=3,
            web_enabled=False,
            consumer_auto_offset_reset="earliest",
        )
        source = app.topic(src, key_type=bytes, value_type=bytes)
        sink = app.topic(dst, key_type=bytes, value_type=bytes, partitions=3)

        @app.agent(source)
        async def copy(stream: Any) -> None:
            async for event in stream.events():
                decoded = codec.decode(event.value)
                await sink.send(key=event.key, value=codec.encode(decoded))

        if drain:

            @app.agent(sink)
            async def ignore(stream: Any) -> None:
                async for _ in stream.events():
                    pass

        worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
        worker.execute_from_commandline()


# -- the parent --------------------------------------------------------------
def _count_until(consumer: Consumer, n: int, proc: subprocess.Popen[bytes], t0: float) -> Run:
    count, first, deadline = 0, 0.0, t0 + TIMEOUT_S
    while count < n and time.perf_counter() < deadline:
        if proc.poll() is not None:
            break
        for msg in consumer.consume(1000, 0.05):
            err = msg.error()
            if err is not None and err.code() != KafkaError._PARTITION_EOF:
                raise RuntimeError(err.str())
            if err is None:
                if not count:
                    first = time.perf_counter()
                count += 1
    end = time.perf_counter()
    total = end - t0
    if count < n:
        return Run("", total, first - t0 if first else 0.0, 0.0, 0.0, f"{count}/{n} outputs")
    return Run("", total, first - t0, n / (end - first), 0.0)


def _stop(proc: subprocess.Popen[bytes]) -> tuple[float, bool, float]:
    """SIGTERM, wait up to STOP_S, then SIGKILL: (seconds to exit, killed, child CPU s)."""
    if proc.returncode is not None:  # exited (crashed) before N outputs, already reaped
        return 0.0, False, float("nan")
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    killed = False
    while True:
        pid, _, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = -1
            return time.perf_counter() - t0, killed, usage.ru_utime + usage.ru_stime
        if not killed and time.perf_counter() - t0 > STOP_S:
            proc.kill()
            killed = True
        time.sleep(0.05)


def _run(kind: str, kernel: Any, admin: AdminClient, src: str, tag: str, log: Path) -> Run:
    dst = kernel.names.name(f"copy-{tag}")
    admin.create_topics([NewTopic(dst, 3, 1)])[dst].result()
    counter = Consumer(
        {
            "bootstrap.servers": kernel.settings.kafka_bootstrap,
            "group.id": f"count-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 20,
        }
    )
    counter.assign([TopicPartition(dst, p, 0) for p in range(3)])
    counter.consume(1, 0.5)  # connected and fetching before the clock starts
    group = f"{kind}-{tag}"
    args = [sys.executable, "-m", "bench.stream_runtime", "_worker", kind, kernel.names.prefix]
    with log.open("ab") as err:
        err.write(f"\n=== {kind} {tag}\n".encode())
        err.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen([*args, src, dst, group], stdout=err, stderr=err)
        try:
            run = _count_until(counter, N, proc, t0)
        finally:
            counter.close()
            stopped = _stop(proc)
        run.stop_s, run.killed, run.cpu_s = stopped
    run.kind = kind
    if run.error:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        run.error += ": " + " | ".join(tail)
    return run


def main(kinds: Sequence[str] = KINDS) -> None:
    kernel = bootstrap()
    kernel.stack().up()
    kernel.names.prefix = f"bench{uuid.uuid4().hex[:8]}."
    kernel.topic_admin().ensure()
    src = kernel.names.actions
    kernel.producer().publish_batch(_events(N))
    admin = AdminClient({"bootstrap.servers": kernel.settings.kafka_bootstrap})
    log = Path(tempfile.gettempdir()) / f"stream_runtime-{kernel.names.prefix}log"
    runs: dict[str, list[Run]] = {k: [] for k in kinds}
    for r in range(ROUNDS):
        for kind in kinds:
            run = _run(kind, kernel, admin, src, f"{kind}-{r}", log)
            runs[kind].append(run)
            state = run.error or f"{run.rate:,.0f} events/s"
            state += f", stopped in {run.stop_s:.1f} s" + (" (SIGKILL)" if run.killed else "")
            print(f"  round {r + 1} {kind}: {state}", file=sys.stderr)
    base = statistics.median(r.rate for r in runs[kinds[0]])
    rows: list[list[object]] = []
    for kind in kinds:
        ok = [r for r in runs[kind] if not r.error]
        if len(ok) < len(runs[kind]):
            rows.append([LABELS[kind], "failed", "-", "-", "-", "-", "-"])
            continue
        rate = statistics.median(r.rate for r in ok)
        rows.append(
            [
                LABELS[kind],
                rate,
                f"{rate / base:.2f}",
                statistics.median(r.start_s for r in ok),
                statistics.median(r.steady for r in ok),
                statistics.median(r.cpu_s for r in ok),
                f"{statistics.median(r.stop_s for r in ok):.1f}"
                + (f" ({sum(r.killed for r in ok)} killed)" if any(r.killed for r in ok) else ""),
            ]
        )
    table(
        f"Consume-decode-encode-produce, {N:,} events, 3 -> 3 partitions "
        f"(median of {ROUNDS}; {os.cpu_count()} cores, broker on this machine)",
        ["runtime", "events/s", "vs runner", "start s", "steady ev/s", "child CPU s", "stop s"],
        rows,
    )
    for kind in kinds:
        for r in runs[kind]:
            if r.error:
                print(f"  {kind} failed: {r.error}")
    print(f"  child logs: {log}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        kind, prefix, src, dst, group = sys.argv[2:7]
        if kind == "runner":
            _worker_runner(prefix, src, dst, group)
        else:
            guarantee = "at_least_once" if kind == "faust-alo" else "exactly_once"
            _worker_faust(src, dst, f"{prefix}{group}", guarantee, kind == "faust-eos-tx")
    else:
        main([k for k in KINDS if k in sys.argv[1:]] or KINDS)
