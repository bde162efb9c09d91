"""Time from a broker restart to a transactional runner committing again.

Needs a stack of its OWN (this kills its broker): e.g.
``KERNEL_STATE_DIR=/var/tmp/kernel-h-runner KERNEL_KAFKA_PORT=39192 KERNEL_PG_PORT=35532
python -m bench.broker_restart``. Never point it at a shared stack.

A :class:`TransactionalRunner` copying actions to another topic runs in a
thread while a publisher keeps ~200 events/s coming. Per round
(``BENCH_ROUNDS``, default 2, alternating kill -9 and a graceful stop;
``BENCH_MODES=kill,term`` to choose), the broker goes down for ``BENCH_DOWN_S``
(default 5 s) and comes back; printed: seconds from the broker answering again
to the runner's next commit, and from the stop itself, plus aborts and
producer rebuilds. ``BENCH_GIVE_UP_S`` (default 900) bounds a round.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ops.bootstrap import Kernel
from ops.config import Settings
from ops.stack.kafka_server import KafkaServer
from schemas.events import new_event
from streams.kafka.transactional_runner import RunnerStats, TransactionalRunner
from streams.processor import InputRecord, LogReader, OutputRecord


@dataclass
class Copy:
    out_topic: str
    input_topics: Sequence[str]
    name: str = "restart-bench"

    def recover(self, assigned: Sequence[tuple[str, int]], reader: LogReader) -> int:
        return 0

    def step(self, state: int, record: InputRecord) -> tuple[int, list[OutputRecord]]:
        return state + 1, [OutputRecord(self.out_topic, record.key or b"", record.event)]


def main() -> None:
    settings = Settings.from_env(dict(os.environ))
    settings = replace(settings, topic_prefix=f"rb{uuid.uuid4().hex[:8]}.")
    kernel = Kernel(settings)
    server = KafkaServer(settings.state_dir, settings.kafka_port, settings.kafka_home)
    if not server.running():
        raise SystemExit(f"no broker of this stack at {server.bootstrap}; run `kernel up` first")
    kernel.topic_admin().ensure()
    out = kernel.names.name("remediations")
    commits: list[float] = []

    def on_batch(_stats: RunnerStats) -> None:
        commits.append(time.monotonic())

    runner: TransactionalRunner[int] = TransactionalRunner(
        Copy(out, [kernel.names.actions]),
        kafka=kernel.kafka,
        codec=kernel.codec,
        names=kernel.names,
        on_batch=on_batch,
    )
    stop = threading.Event()
    stop_publishing = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            runner.run(stop.is_set)
        except BaseException as exc:  # report it; the round then times out visibly
            failure.append(exc)

    def publish() -> None:
        producer = kernel.producer()
        while not stop_publishing.is_set():
            event = new_event("kernelAction", "bench", f"s{time.monotonic_ns() % 8}",
                              {"action": "touch", "resource": "r", "context": {}})  # fmt: skip
            try:
                producer.publish_batch([event] * 1)
            except Exception:  # the broker is down: keep trying
                time.sleep(0.2)
            time.sleep(0.005)

    threads = [
        threading.Thread(target=run, daemon=True),
        threading.Thread(target=publish, daemon=True),
    ]
    for t in threads:
        t.start()
    give_up = float(os.environ.get("BENCH_GIVE_UP_S", "900"))
    down_s = float(os.environ.get("BENCH_DOWN_S", "5"))
    modes = os.environ.get("BENCH_MODES", "kill,term").split(",")
    rounds = int(os.environ.get("BENCH_ROUNDS", "2"))
    deadline = time.monotonic() + 60
    while not commits and time.monotonic() < deadline:
        time.sleep(0.2)
    print(f"runner committing ({len(commits)} commits); rounds: {rounds}, down {down_s}s")
    for i in range(rounds):
        mode = modes[i % len(modes)]
        time.sleep(3)
        pid = server.pid()
        assert pid is not None
        stopped = time.monotonic()
        if mode == "kill":
            os.kill(pid, signal.SIGKILL)
            while server.pid() is not None:
                time.sleep(0.05)
        else:
            server.stop()
        time.sleep(down_s)
        server.start()
        back = time.monotonic()
        while not (commits and commits[-1] > back) and time.monotonic() - back < give_up:
            if failure:
                break
            time.sleep(0.05)
        if failure:
            print(f"round {i + 1} ({mode}): runner died: {failure[0]!r}")
            break
        if not (commits and commits[-1] > back):
            print(f"round {i + 1} ({mode}): no commit within {give_up:.0f}s of the restart")
            continue
        print(
            f"round {i + 1} ({mode}): committing again {commits[-1] - back:.1f}s after the "
            f"broker answered, {commits[-1] - stopped:.1f}s after the stop; "
            f"aborts {runner.stats.aborts}, rebuilds {getattr(runner.stats, 'rebuilds', 'n/a')}"
        )
    stop_publishing.set()
    threads[1].join(timeout=30)
    time.sleep(15)  # let the runner copy the rest
    stop.set()
    threads[0].join(timeout=60)
    runner.close()
    print(exactly_once(kernel, out))


def exactly_once(kernel: Kernel, out: str) -> str:
    """Every committed input copied once: the inputs' event ids against the outputs'."""
    from collections import Counter  # noqa: PLC0415

    from streams.kafka.log_reader import KafkaLogReader  # noqa: PLC0415

    reader = KafkaLogReader(kernel.settings.kafka_bootstrap, kernel.codec)
    try:
        ids: dict[str, Counter[str]] = {}
        for topic in (kernel.names.actions, out):
            ids[topic] = Counter(
                r.event.event_id for p in reader.partitions(topic) for r in reader.iter(topic, p, 0)
            )
    finally:
        reader.close()
    inputs, outputs = ids[kernel.names.actions], ids[out]
    dupes = sum(n - 1 for n in outputs.values() if n > 1)
    missing = len(set(inputs) - set(outputs))
    return (
        f"exactly-once check: {sum(inputs.values())} inputs, {sum(outputs.values())} outputs, "
        f"{dupes} duplicated, {missing} not (yet) copied"
    )


if __name__ == "__main__":
    main()
