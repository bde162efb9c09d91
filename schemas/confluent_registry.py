"""The codec's :class:`~schemas.codec.SchemaRegistry` over Confluent's own client.

``confluent_kafka.schema_registry.SchemaRegistryClient`` speaks the REST API
of any Confluent-compatible registry (Confluent's, Apicurio's ``ccompat``,
Karapace). Only two of its calls are used: register a schema under a subject
(the registry answers the existing id when the schema is already there) and
fetch a schema by id. The codec keeps its own framing (``00`` + 4-byte id,
docs/decisions/0012-schema-registry-client.md): the serializer classes of
``confluent_kafka`` would neither check the input contract nor keep the
single-object default.

Answers are cached here (an id never changes meaning in a registry), so each
schema costs one request per process. Every failure of the client -- an
answer such as 404 or 409, or no answer at all -- becomes a
:class:`~schemas.errors.SchemaError` naming the registry and the schema or id.
A registry that is down fails after the client's bounded retries and never
hangs: each request has ``timeout_s``, and there are ``max_retries`` retries
with jittered backoff (well under a second when the port refuses).
"""

from __future__ import annotations

import json

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from fastavro.schema import parse_schema, to_parsing_canonical_form

from schemas.catalog import EventSchema
from schemas.errors import SchemaError

__all__ = ["ConfluentRegistry"]


class ConfluentRegistry:
    def __init__(self, url: str, *, timeout_s: float = 10.0, max_retries: int = 2) -> None:
        self._url = url
        self._conf: dict[str, object] = {
            "url": url,
            "timeout": timeout_s,
            "max.retries": max_retries,
            "retries.wait.ms": 200,
            "retries.max.wait.ms": 2000,
        }
        self._ids: dict[tuple[str, str], int] = {}  # (subject, canonical form) -> id
        self._canonical: dict[int, str] = {}

    def register(self, subject: str, schema: EventSchema) -> int:
        key = (subject, schema.canonical)
        if key not in self._ids:
            try:
                with self._client() as client:
                    answer = client.register_schema(subject, Schema(json.dumps(schema.raw), "AVRO"))
                schema_id = int(answer)
            except Exception as exc:  # the client raises its HTTP library's errors too
                raise SchemaError(
                    f"schema registry {self._url} did not register {schema.key} under {subject}: "
                    f"{_reason(exc)}"
                ) from exc
            self._ids[key] = schema_id
            self._canonical[schema_id] = schema.canonical
        return self._ids[key]

    def schema_for(self, schema_id: int) -> str:
        if schema_id not in self._canonical:
            try:
                with self._client() as client:
                    found = client.get_schema(schema_id)
                raw = json.loads(found.schema_str or "")
                canonical = str(to_parsing_canonical_form(parse_schema(raw)))
            except Exception as exc:  # the client raises its HTTP library's errors too
                raise SchemaError(
                    f"schema registry {self._url} has no usable schema id {schema_id}: "
                    f"{_reason(exc)}"
                ) from exc
            self._canonical[schema_id] = canonical
        return self._canonical[schema_id]

    def _client(self) -> SchemaRegistryClient:
        # A client (an HTTP connection pool) per call, closed after it: calls are
        # rare, one per schema and process, as this class and the codec cache the
        # answers; so no idle connection outlives its call, and nothing needs closing.
        return SchemaRegistryClient(dict(self._conf))


def _reason(exc: Exception) -> str:
    if isinstance(exc, SchemaRegistryError):
        return f"HTTP {exc.http_status_code}: {exc.error_message}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
