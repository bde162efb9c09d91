"""The stacks the suite starts listen on ports no other test can be holding.

A port in the kernel's ephemeral range (32768-60999 by default) can be taken at
any moment by a client socket's source port or by a server a test starts on
port 0; a broker that then fails to bind exits during start (seen once in CI:
the fault suite's stack on 39092/39093).
"""

from __future__ import annotations

import inspect
import socket
from pathlib import Path

import pytest

from ops.stack.errors import StackError
from ops.stack.kafka_server import KafkaServer
from tests import conftest
from tests.faults.fault_stack import FaultStack
from tests.integration.security import test_kafka_sasl_ssl


def _ephemeral() -> range:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return range(int(low), int(high) + 1)


def _fault_defaults() -> tuple[int, int]:
    params = inspect.signature(FaultStack.__init__).parameters
    return params["kafka_port"].default, params["pg_port"].default


def test_every_stack_port_is_outside_the_ephemeral_range() -> None:
    kafka, pg = _fault_defaults()
    ports = {
        "test Kafka": conftest.TEST_KAFKA_PORT,
        "test Kafka controller": conftest.TEST_KAFKA_PORT + 1,
        "test Postgres": conftest.TEST_PG_PORT,
        "secured Kafka": test_kafka_sasl_ssl.SECURE_PORT,
        "secured Kafka controller": test_kafka_sasl_ssl.SECURE_PORT + 1,
        "fault Kafka": kafka,
        "fault Kafka controller": kafka + 1,
        "fault Postgres": pg,
    }
    inside = {name: port for name, port in ports.items() if port in _ephemeral()}
    assert not inside, f"ports in the ephemeral range: {inside}"
    assert len(set(ports.values())) == len(ports), f"two stacks share a port: {ports}"


def test_a_taken_controller_port_is_named_before_the_broker_starts(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        controller = held.getsockname()[1]
        server = KafkaServer(tmp_path, controller - 1)
        with pytest.raises(StackError, match=f"port {controller} is taken"):
            server.start()
