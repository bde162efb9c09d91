"""Which errors are a record's fault, and dead letters that always encode."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from projections.kafka_dead_letters import KafkaDeadLetters
from projections.postgres import PostgresTimeouts
from projections.rejections import Rejection, is_record_error
from schemas.codec import EventCodec
from schemas.contract import InputContract
from schemas.errors import LogUnavailableError, StoreUnavailableError, ValidationError
from schemas.topics import TopicNames


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.errors.UniqueViolation(),
        psycopg.errors.CheckViolation(),
        psycopg.errors.InvalidTextRepresentation(),  # not a uuid
        psycopg.errors.UntranslatableCharacter(),  # \u0000 in jsonb
        psycopg.errors.StringDataRightTruncation(),  # value too long
        psycopg.errors.ProgramLimitExceeded(),  # index row too large
        psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"),
        ValidationError("bad", field="x"),
        KeyError("payload"),
    ],
)
def test_record_errors(exc: Exception) -> None:
    assert is_record_error(exc)


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.OperationalError("connection refused"),
        psycopg.errors.QueryCanceled(),  # statement_timeout
        psycopg.errors.AdminShutdown(),
        psycopg.errors.DeadlockDetected(),
        psycopg.errors.SerializationFailure(),
        psycopg.errors.UndefinedTable(),  # migrations not run
        psycopg.errors.InsufficientPrivilege(),
        psycopg.errors.DiskFull(),
        psycopg.errors.LockNotAvailable(),
        psycopg.InterfaceError("the connection is closed"),
        psycopg.ProgrammingError("client-side misuse"),
        LogUnavailableError("kafka"),
        StoreUnavailableError("postgres"),
        KeyboardInterrupt(),
    ],
)
def test_infrastructure_errors(exc: BaseException) -> None:
    assert not is_record_error(exc)


class _Producer:
    def __init__(self, codec: EventCodec) -> None:
        self.codec = codec
        self.names = TopicNames("t.")
        self.sent: list[tuple[str, bytes, bytes]] = []

    def publish_encoded(self, records: Sequence[tuple[str, bytes, bytes]]) -> None:
        self.sent.extend(records)


@given(
    value=st.one_of(st.none(), st.binary(max_size=30_000)),
    key=st.one_of(st.none(), st.binary(max_size=64)),
    reason=st.text(max_size=300),
)
def test_a_dead_letter_always_encodes(value: bytes | None, key: bytes | None, reason: str) -> None:
    # small, so large values must fall back
    codec = EventCodec(contract=InputContract(max_event_bytes=2000, max_record_bytes=20_000))
    producer = _Producer(codec)
    sink = KafkaDeadLetters(producer, "audit")  # type: ignore[arg-type]
    sink([Rejection("t.audit.chain", 1, 7, key, value, reason, "DataError")])
    ((topic, _key, data),) = producer.sent
    body = codec.decode(data).body
    assert topic == "t.dlq"
    assert (body["sourceTopic"], body["sourcePartition"], body["sourceOffset"]) == (
        "t.audit.chain", 1, 7,
    )  # fmt: skip
    assert body["processor"] == "audit" and body["errorType"] == "DataError"
    assert body["sourceValue"] in (value, None)
    if body["sourceValue"] is None and value is not None:
        assert len(value) > 512 * 1024 or "not copied" in body["reason"]


def test_timeouts_bound_a_dead_peer_after_its_keepalives() -> None:
    t = PostgresTimeouts(connect_s=5, statement_s=20, keepalive_s=9)
    assert (t.keepalive_interval_s, t.keepalive_count) == (3, 3)
    assert t.tcp_user_timeout_ms == (9 + 3 * 3) * 1000
