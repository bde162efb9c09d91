"""No Kafka or Postgres client is constructed outside the adapter modules.

Every producer, consumer and admin client is built by
:class:`streams.kafka.clients.KafkaClients` (so TLS and SASL are configured in
one place), and every Postgres connection or pool is opened by
:mod:`projections.postgres` (so a process connects as its role, with its
timeouts). This test reads the package's source, resolves what each call names
through the module's imports (``from confluent_kafka import Producer as P``,
``import psycopg``, ``psycopg.Connection.connect``), and fails naming the file
and line of any client constructed elsewhere.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "streams", "projections", "replay", "ops")

ADAPTERS = {
    "streams/kafka/clients.py",  # every Kafka client
    "projections/postgres.py",  # every Postgres connection and pool
    "schemas/confluent_registry.py",  # the schema registry's REST client
    "ops/telemetry.py",  # the OTLP span exporter
    "streams/chain/pkcs11_signer.py",  # the HSM's PKCS#11 library and session
}

CONSTRUCTORS = {
    "confluent_kafka.Producer",
    "confluent_kafka.Consumer",
    "confluent_kafka.admin.AdminClient",
    "confluent_kafka.AdminClient",
    "aiokafka.AIOKafkaProducer",
    "aiokafka.AIOKafkaConsumer",
    "aiokafka.admin.AIOKafkaAdminClient",
    "psycopg.connect",
    "psycopg.Connection.connect",
    "psycopg.AsyncConnection.connect",
    "psycopg_pool.ConnectionPool",
    "psycopg_pool.AsyncConnectionPool",
    "psycopg_pool.NullConnectionPool",
    "confluent_kafka.schema_registry.SchemaRegistryClient",
    "httpx.Client",
    "httpx.AsyncClient",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter.OTLPSpanExporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter.OTLPSpanExporter",
    "pkcs11.lib",
}


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def constructions(source: str) -> list[tuple[int, str]]:
    """(line, fully qualified name) of every client constructor called in ``source``."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = (
                    a.name if a.asname else a.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name is None:
            continue
        head, _, rest = name.partition(".")
        full = aliases.get(head, head) + (f".{rest}" if rest else "")
        if full in CONSTRUCTORS:
            found.append((node.lineno, full))
    return found


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_no_client_is_constructed_outside_the_adapters() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in _modules()
        if str(path.relative_to(ROOT)) not in ADAPTERS
        for line, name in constructions(path.read_text())
    ]
    assert not offenders, "clients constructed outside the adapters:\n" + "\n".join(offenders)


def test_the_adapters_are_where_the_clients_are_constructed() -> None:
    """The allow-list names modules that exist and do construct clients (no dead entries)."""
    for adapter in ADAPTERS:
        assert constructions((ROOT / adapter).read_text()), adapter


@pytest.mark.parametrize(
    "source",
    [
        "import psycopg\npsycopg.connect('x')\n",
        "from psycopg import connect as c\nc('x')\n",
        "import psycopg\npsycopg.Connection.connect('x')\n",
        "from confluent_kafka import Producer as _P\n_P({})\n",
        "import confluent_kafka as ck\nck.Consumer({})\n",
        "from confluent_kafka.admin import AdminClient\nAdminClient({})\n",
        "from psycopg_pool import ConnectionPool\nConnectionPool('x')\n",
        "from aiokafka import AIOKafkaProducer\nAIOKafkaProducer()\n",
    ],
)
def test_every_spelling_of_a_construction_is_found(source: str) -> None:
    assert constructions(source)


def test_our_own_classes_of_the_same_name_are_not_clients() -> None:
    source = "from streams.kafka.producer import Producer\nProducer('b')\n"
    assert constructions(source) == []
