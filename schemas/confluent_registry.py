"""A Confluent-compatible schema registry client (REST, over httpx).

Only the two calls the codec needs: register a schema under a subject (the
registry answers the existing id when the schema is already there) and fetch a
schema by id.
"""

from __future__ import annotations

import json

import httpx
from fastavro.schema import parse_schema, to_parsing_canonical_form

from schemas.catalog import EventSchema
from schemas.errors import SchemaError

__all__ = ["ConfluentRegistry"]

_CT = "application/vnd.schemaregistry.v1+json"


class ConfluentRegistry:
    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self._client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s)
        self._url = url

    def register(self, subject: str, schema: EventSchema) -> int:
        try:
            resp = self._client.post(
                f"/subjects/{subject}/versions",
                content=json.dumps({"schema": json.dumps(schema.raw)}),
                headers={"Content-Type": _CT},
            )
            resp.raise_for_status()
            return int(resp.json()["id"])
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise SchemaError(f"schema registry {self._url} refused {schema.key}: {exc}") from exc

    def schema_for(self, schema_id: int) -> str:
        try:
            resp = self._client.get(f"/schemas/ids/{schema_id}")
            resp.raise_for_status()
            raw = json.loads(resp.json()["schema"])
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise SchemaError(
                f"schema registry {self._url} has no schema {schema_id}: {exc}"
            ) from exc
        return str(to_parsing_canonical_form(parse_schema(raw)))
