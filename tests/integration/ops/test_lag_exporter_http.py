"""The exporter serves the lag of a real group on /metrics."""

from __future__ import annotations

import socket
import threading
import time

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition

from ops.bootstrap import Kernel
from ops.lag.exporter import LagExporter
from ops.lag.monitor import LagConfig, LagMonitor
from streams.kafka.offsets import KafkaOffsets


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_metrics_endpoint_shows_lag_of_our_group(kernel: Kernel) -> None:
    topic, group = kernel.names.actions, f"{kernel.settings.topic_prefix}exported"
    p = Producer({"bootstrap.servers": kernel.settings.kafka_bootstrap})
    for _ in range(6):
        p.produce(topic, b"x", partition=2)
    assert p.flush(10) == 0
    c = Consumer({"bootstrap.servers": kernel.settings.kafka_bootstrap, "group.id": group})
    c.commit(offsets=[TopicPartition(topic, 2, 2)], asynchronous=False)
    c.close()

    offsets = KafkaOffsets(kernel.settings.kafka_bootstrap)
    monitor = LagMonitor(
        offsets, prefix=kernel.settings.topic_prefix, config=LagConfig(interval_s=0.2)
    )
    stop, port = threading.Event(), _free_port()
    server = threading.Thread(
        target=LagExporter(monitor).serve, args=(port,), kwargs={"stop": stop}
    )
    server.start()
    try:
        want = f'kernel_consumer_lag_offsets{{group="{group}",partition="2",topic="{topic}"}} 4.0'
        body, deadline = "", time.monotonic() + 10
        while want not in body and time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.TransportError:
                continue
        assert want in body
        # a bare commit, no consumer in the group: lag and no live member is NO_MEMBER (5)
        assert f'kernel_consumer_group_status{{group="{group}"}} 5.0' in body
        assert "kernel_lag_sample_duration_seconds_count" in body
    finally:
        stop.set()
        server.join(timeout=10)
        offsets.close()
    assert not server.is_alive()
