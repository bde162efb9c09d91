"""Adapter: publish policyCheck events from asyncio and await their acknowledgement (Kafka).

The synchronous check answers only once its decision is durable, so every
request waits for one produce acknowledgement. One confluent-kafka producer
(idempotent, ``acks=all``) serves all requests; a thread polls it so delivery
callbacks fire promptly, and each callback resolves the request's asyncio
future through ``call_soon_threadsafe``. Nothing blocks the event loop, and
requests in flight together share broker round trips. ``linger.ms`` is 0: a
record leaves at once, and under load batching happens by itself while earlier
produce requests are in flight (up to five per connection, idempotence keeps
them ordered). Measured at 500 records/s of a 32 KB policyCheck on the test
host, the acknowledgement took a median 0.8-1.3 ms with no linger against
2.1-2.7 ms with 1 ms of linger, for the same CPU. (The SDK's blocking
``Producer.publish`` flushes the whole queue -- other requests' records too --
and the aiokafka producer spent about 5 ms of CPU per record here; both cost
more than the whole decision.)

A record not acknowledged within ``timeout_s`` (``message.timeout.ms``, and an
asyncio bound one second above it) raises :class:`LogUnavailableError`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence

from confluent_kafka import KafkaError, Message

from schemas.codec import EventCodec
from schemas.errors import LogUnavailableError
from schemas.events import Event
from schemas.positions import LogPosition
from streams.kafka.clients import KafkaClients
from streams.kafka.producer import producer_config

__all__ = ["KafkaDecisionLog"]


class KafkaDecisionLog:
    def __init__(
        self, kafka: KafkaClients | str, codec: EventCodec, topic: str, timeout_s: float
    ) -> None:
        self.topic = topic
        self.timeout_s = timeout_s
        self._codec = codec
        self._bootstrap = KafkaClients.of(kafka).bootstrap
        self._producer = KafkaClients.of(kafka).producer(
            producer_config(timeout_s, **{"linger.ms": 0})
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="decision-log", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    async def publish(self, events: Sequence[Event], topic: str | None = None) -> list[LogPosition]:
        """Produce ``events`` (keyed by subject) to ``topic`` (default: this log's) and
        wait until Kafka has them all."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[LogPosition]] = []
        for event in events:
            future: asyncio.Future[LogPosition] = loop.create_future()
            futures.append(future)
            try:
                self._producer.produce(
                    topic or self.topic,
                    self._codec.encode(event),
                    event.subject.encode(),
                    on_delivery=_settle(loop, future, self._bootstrap),
                )
            except BufferError as exc:
                raise LogUnavailableError(
                    f"Kafka at {self._bootstrap}: the local queue is full; the log is not "
                    "keeping up"
                ) from exc
        bound = self.timeout_s + 1
        try:
            if len(futures) == 1:  # the usual check: no gathering future to build
                return [await asyncio.wait_for(futures[0], bound)]
            return list(await asyncio.wait_for(asyncio.gather(*futures), bound))
        except TimeoutError as exc:
            raise LogUnavailableError(
                f"Kafka at {self._bootstrap} did not acknowledge within {self.timeout_s:.0f}s"
            ) from exc

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._producer.flush(self.timeout_s)


def _settle(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[LogPosition], where: str
) -> Callable[[KafkaError | None, Message], None]:
    def callback(err: KafkaError | None, msg: Message) -> None:
        loop.call_soon_threadsafe(_resolve, future, err, msg, where)

    return callback


def _resolve(
    future: asyncio.Future[LogPosition], err: KafkaError | None, msg: Message, where: str
) -> None:
    if future.done():
        return
    if err is not None:
        future.set_exception(
            LogUnavailableError(f"Kafka at {where} did not acknowledge: {err.str()}")
        )
        return
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    if topic is None or partition is None or offset is None:
        future.set_exception(LogUnavailableError("Kafka acknowledged without a position"))
        return
    future.set_result(LogPosition(topic, partition, offset))
