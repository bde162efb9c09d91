"""Every Kafka client Kernel makes is constructed here, from one connection setting.

A :class:`KafkaClients` is where the brokers are and how to reach them: the
bootstrap servers and the connection's security settings (librdkafka's
``security.protocol``, ``ssl.*``, ``sasl.*``). Producers, consumers and admin
clients are built from it, so TLS and SASL are configured once for all of them;
an adapter adds only what its role needs (a group, a transactional id, an
isolation level). The composition root (:class:`ops.bootstrap.Kernel`) makes
the one instance and hands it to the adapters; ``tests/unit/test_client_construction.py``
fails if a client is constructed anywhere else.

Adapters accept a bare bootstrap string too (:meth:`KafkaClients.of`), which is
a plaintext connection: handy in tests and benchmarks, never what the root passes.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from schemas.errors import ConfigError

__all__ = ["LIBRDKAFKA_LOG", "KafkaClients"]

LIBRDKAFKA_LOG = logging.getLogger("kernel.librdkafka")
"""librdkafka's own log lines go through Python logging (JSON in workers), not raw stderr."""

_AIOKAFKA_SECURITY = {
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.mechanisms": "sasl_mechanism",
    "sasl.username": "sasl_plain_username",
    "sasl.password": "sasl_plain_password",
}
# librdkafka's TLS files: aiokafka takes them as one SSLContext.
_SSL_CONTEXT = frozenset(
    {
        "ssl.ca.location",
        "ssl.certificate.location",
        "ssl.key.location",
        "ssl.key.password",
        "ssl.endpoint.identification.algorithm",
    }
)


@dataclass(frozen=True)
class KafkaClients:
    """The brokers and how to reach them; builds every client from that."""

    bootstrap: str
    security: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, kafka: KafkaClients | str) -> KafkaClients:
        """``kafka`` itself, or a plaintext connection to the bootstrap string ``kafka``."""
        return kafka if isinstance(kafka, KafkaClients) else cls(kafka)

    def config(self, role: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """librdkafka configuration: the connection's, then the role's on top."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "logger": LIBRDKAFKA_LOG}
        conf.update(self.security)
        conf.update(role or {})
        return conf

    def producer(self, role: Mapping[str, Any] | None = None) -> Producer:
        return Producer(self.config(role))

    def consumer(self, role: Mapping[str, Any]) -> Consumer:
        return Consumer(self.config(role))

    def admin(self, role: Mapping[str, Any] | None = None) -> AdminClient:
        return AdminClient(self.config(role))

    def aio_producer(self, **role: Any) -> AIOKafkaProducer:
        """An asyncio producer (aiokafka), with the connection's security mapped onto its
        arguments; a setting aiokafka cannot take is refused, never dropped."""
        return AIOKafkaProducer(**self.aio_arguments(**role))

    def aio_arguments(self, **role: Any) -> dict[str, Any]:
        """aiokafka's arguments for this connection: librdkafka's security keys mapped,
        TLS files made into an ``ssl_context``, then the role's on top."""
        kwargs: dict[str, Any] = {"bootstrap_servers": self.bootstrap}
        tls: dict[str, str] = {}
        for key, value in self.security.items():
            if key in _SSL_CONTEXT:
                tls[key] = value
            elif key in _AIOKAFKA_SECURITY:
                kwargs[_AIOKAFKA_SECURITY[key]] = value
            else:
                raise ConfigError(
                    f"Kafka setting {key!r} is not supported by the asyncio producer; "
                    "use the Producer (confluent-kafka) for this connection"
                )
        if tls or str(kwargs.get("security_protocol", "")).upper().endswith("SSL"):
            kwargs["ssl_context"] = _ssl_context(tls)
        kwargs.update(role)
        return kwargs


def _ssl_context(tls: Mapping[str, str]) -> ssl.SSLContext:
    """aiokafka takes TLS as an :class:`ssl.SSLContext`: librdkafka's ``ssl.*`` files
    made into one (the CA to trust, a client certificate for mutual TLS)."""
    try:
        context = ssl.create_default_context(cafile=tls.get("ssl.ca.location"))
        if "ssl.certificate.location" in tls or "ssl.key.location" in tls:
            context.load_cert_chain(
                tls["ssl.certificate.location"],
                tls.get("ssl.key.location"),
                tls.get("ssl.key.password"),
            )
    except (OSError, KeyError, ssl.SSLError) as exc:
        raise ConfigError(f"Kafka TLS settings cannot be loaded: {exc}") from exc
    verify = tls.get("ssl.endpoint.identification.algorithm", "https").lower()
    if verify not in ("https", "none", ""):
        raise ConfigError(
            f"ssl.endpoint.identification.algorithm must be https or none, got {verify!r}"
        )
    context.check_hostname = verify == "https"
    return context
