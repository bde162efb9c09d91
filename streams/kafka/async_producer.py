"""The asyncio variant of the producer SDK, on aiokafka.

Same guarantees as :class:`streams.kafka.producer.Producer`: idempotent,
``acks=all``, keyed by subject, and ``publish`` returns the durable position.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka.errors import KafkaError

from schemas.codec import EventCodec
from schemas.errors import LogUnavailableError
from schemas.events import Event
from schemas.positions import LogPosition
from schemas.topics import TopicNames
from streams.kafka.clients import KafkaClients

__all__ = ["AsyncProducer"]


class AsyncProducer:
    def __init__(
        self,
        kafka: KafkaClients | str,
        *,
        codec: EventCodec | None = None,
        names: TopicNames | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.codec = codec or EventCodec()
        self.names = names or TopicNames()
        self.timeout_s = timeout_s
        self._bootstrap = KafkaClients.of(kafka).bootstrap
        self._producer = KafkaClients.of(kafka).aio_producer(
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            request_timeout_ms=int(timeout_s * 1000),
        )

    async def start(self) -> None:
        try:
            await asyncio.wait_for(self._producer.start(), self.timeout_s)
        except (KafkaError, TimeoutError) as exc:
            await self._producer.stop()
            raise LogUnavailableError(
                f"Kafka at {self._bootstrap} did not answer within {self.timeout_s:.0f}s: {exc!r}"
            ) from exc

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(self, event: Event, topic: str | None = None) -> LogPosition:
        return (await self.publish_batch([event], topic))[0]

    async def publish_batch(
        self, events: Sequence[Event], topic: str | None = None
    ) -> list[LogPosition]:
        encoded = [
            (
                topic or self.names.for_event_type(e.event_type),
                e.subject.encode(),
                self.codec.encode_checked(e),  # a door: the input contract first
            )
            for e in events
        ]
        try:
            futures = [await self._producer.send(t, v, key=k) for t, k, v in encoded]
            metas = await asyncio.wait_for(asyncio.gather(*futures), self.timeout_s)
        except (KafkaError, TimeoutError) as exc:
            raise LogUnavailableError(
                f"Kafka at {self._bootstrap} did not acknowledge within {self.timeout_s:.0f}s: "
                f"{exc!r}"
            ) from exc
        return [LogPosition(m.topic, m.partition, m.offset) for m in metas]

    async def __aenter__(self) -> AsyncProducer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
