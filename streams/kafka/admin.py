"""Create the declared topics and report drift from the declaration."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    ConfigResource,
    NewTopic,
)

from schemas.errors import LogUnavailableError
from schemas.topics import TOPICS, TopicNames, TopicSpec
from streams.kafka.clients import KafkaClients

__all__ = ["TopicAdmin", "TopicReport"]


@dataclass(frozen=True)
class TopicReport:
    topic: str
    action: str  # created | ok | drift
    drift: tuple[str, ...] = ()


class TopicAdmin:
    def __init__(
        self, kafka: KafkaClients | str, names: TopicNames, timeout_s: float = 15.0
    ) -> None:
        self._admin = KafkaClients.of(kafka).admin()
        self._names = names
        self._timeout = timeout_s
        self._bootstrap = KafkaClients.of(kafka).bootstrap

    def existing(self) -> dict[str, int]:
        try:
            md = self._admin.list_topics(timeout=self._timeout)
        except KafkaException as exc:
            raise LogUnavailableError(f"Kafka at {self._bootstrap} did not answer: {exc}") from exc
        return {name: len(t.partitions) for name, t in md.topics.items()}

    def ensure(self) -> list[TopicReport]:
        """Create what is missing; never alter what exists, only report drift."""
        have = self.existing()
        missing = [s for s in TOPICS if self._names.name(s.name) not in have]
        reports: list[TopicReport] = []
        if missing:
            futures = self._admin.create_topics(
                [
                    NewTopic(self._names.name(s.name), s.partitions, 1, config=s.config)
                    for s in missing
                ],
                request_timeout=self._timeout,
            )
            for topic, fut in futures.items():
                try:
                    fut.result()
                except KafkaException as exc:
                    if "TOPIC_ALREADY_EXISTS" not in str(exc):
                        raise LogUnavailableError(f"could not create {topic}: {exc}") from exc
                    continue  # stale metadata: it exists; checked for drift below
                reports.append(TopicReport(topic, "created"))
        if missing:
            # Creation returns before every broker's metadata cache has the topic; a
            # client that asks right away would not find it. Return once it would.
            have = self._await_visible([self._names.name(s.name) for s in missing])
        present = [
            s
            for s in TOPICS
            if self._names.name(s.name) in have
            and self._names.name(s.name) not in {r.topic for r in reports}
        ]
        reports += self._drift(present, have)
        return sorted(reports, key=lambda r: r.topic)

    def _await_visible(self, topics: list[str]) -> dict[str, int]:
        deadline = time.monotonic() + self._timeout
        while True:
            have = self.existing()
            absent = [t for t in topics if t not in have]
            if not absent:
                return have
            if time.monotonic() > deadline:
                raise LogUnavailableError(
                    f"created topics are not visible after {self._timeout:.0f}s: {absent}"
                )
            time.sleep(0.1)

    def _drift(self, present: list[TopicSpec], have: dict[str, int]) -> list[TopicReport]:
        if not present:
            return []
        resources = [ConfigResource("topic", self._names.name(s.name)) for s in present]
        configs = self._admin.describe_configs(resources, request_timeout=self._timeout)
        by_topic = {r.name: f.result() for r, f in configs.items()}
        reports = []
        for spec in present:
            topic = self._names.name(spec.name)
            drift = []
            if have[topic] != spec.partitions:
                drift.append(f"partitions: declared {spec.partitions}, broker {have[topic]}")
            actual = by_topic[topic]
            for key, want in spec.config.items():
                got = actual[key].value if key in actual else None
                if got != want:
                    drift.append(f"{key}: declared {want}, broker {got}")
            reports.append(TopicReport(topic, "drift" if drift else "ok", tuple(drift)))
        return reports
