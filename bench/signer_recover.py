"""What a chain signer's ``recover`` costs on a log with history, by part.

Needs a running stack (``kernel up``). Publishes ``BENCH_N`` (default 20,000)
actions under a fresh topic prefix, chains them with one signer, then times,
``BENCH_ROUNDS`` (default 5) times each, on the signer's full assignment:

- ``heads, keyed``: finding every chain's head as ``recover`` does (links read
  back by window, only the sought chains' links decoded: a link's key is its chain);
- ``heads, decode all``: the same search through a reader that decodes every link
  before filtering (how it was done before); both must find the same heads;
- ``dedup windows``: the last ``KERNEL_DEDUP_WINDOW`` ids of each input partition;
- ``recover``: the whole of ``ChainSigner.recover``.

The assignment includes the topics nothing was published to (policies, keys, ...):
their chains have no link, so the head search reads their chain partition back to
its start, as it does in a deployment where those topics are quiet.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bench._table import table
from ops.bootstrap import Kernel
from ops.config import Settings
from schemas.events import new_event
from streams.chain.links import chain_id
from streams.chain.signer import ChainHead, ChainSigner, _find_heads, chain_partition
from streams.dedup import DuplicateCheck
from streams.kafka.log_reader import KafkaLogReader
from streams.processor import InputRecord


class _DecodeAll:
    """A reader whose key filter decodes every record first: the head search as it was."""

    def __init__(self, reader: KafkaLogReader) -> None:
        self._reader = reader

    def __getattr__(self, name: str) -> object:
        return getattr(self._reader, name)

    def read_keyed(
        self, topic: str, partition: int, start: int, end: int, keys: frozenset[bytes]
    ) -> list[InputRecord]:
        return [r for r in self._reader.read(topic, partition, start, end) if r.key in keys]


def main() -> None:
    n = int(os.environ.get("BENCH_N", "20000"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "5"))
    prefix = f"sr{uuid.uuid4().hex[:8]}."
    settings = replace(Settings.from_env(dict(os.environ)), topic_prefix=prefix)
    kernel = Kernel(settings)
    kernel.topic_admin().ensure()
    with kernel.producer() as producer:
        for i in range(0, n, 1000):
            body = {"action": "touch", "resource": "r", "context": {}}
            batch = range(i, min(n, i + 1000))
            producer.publish_batch(
                [new_event("kernelAction", "bench", f"acct-{j % 97}", body) for j in batch]
            )
    runner = kernel.chain_signer()
    try:
        runner.run_until_idle(idle_s=2.0, max_s=900)
    finally:
        runner.close()
    processor: ChainSigner = runner.processor
    reader = KafkaLogReader(settings.kafka_bootstrap, kernel.codec, timeout_s=30)
    assigned = [(t, p) for t in kernel.names.audited() for p in reader.partitions(t)]
    committed = runner_committed(kernel, assigned)
    reader.set_committed(committed)
    wanted: dict[int, set[str]] = {}
    for topic, partition in assigned:
        chain = chain_id(topic, partition)
        wanted.setdefault(chain_partition(chain, processor.chain_partitions), set()).add(chain)
    links = sum(reader.end_offset(kernel.names.chain, p) for p in wanted)

    def heads(source: Any) -> Callable[[], list[dict[str, ChainHead]]]:
        return lambda: [_find_heads(source, kernel.names.chain, p, cs) for p, cs in wanted.items()]

    keyed, decode_all = heads(reader), heads(_DecodeAll(reader))
    assert keyed() == decode_all(), "the keyed search must find the very same heads"
    parts: list[tuple[str, Callable[[], object]]] = [
        ("heads, keyed", keyed),
        ("heads, decode all", decode_all),
        ("dedup windows", lambda: DuplicateCheck.recover(assigned, reader, processor.dedup_window)),
        ("recover", lambda: processor.recover(assigned, reader)),
    ]
    rows = []
    for name, fn in parts:
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        rows.append([name, statistics.median(times), min(times), max(times)])
    reader.close()
    table(
        f"chain signer recover: {n} actions, {links} links on {len(wanted)} chain partitions, "
        f"{len(assigned)} input partitions (s, {rounds} rounds)",
        ["part", "median s", "min s", "max s"],
        rows,
    )


def runner_committed(kernel: Kernel, assigned: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    from confluent_kafka import Consumer, TopicPartition  # noqa: PLC0415

    consumer = Consumer(
        {"bootstrap.servers": kernel.settings.kafka_bootstrap,
         "group.id": f"{kernel.names.prefix}chain-signer", "enable.auto.commit": False}
    )  # fmt: skip
    try:
        got = consumer.committed([TopicPartition(t, p) for t, p in assigned], 30)
        return {(tp.topic, tp.partition): max(tp.offset, 0) for tp in got}
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
