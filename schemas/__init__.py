"""The wire format: Avro schemas of every event, the codec, the topic catalog.

Public import path::

    from schemas import Event, EventCodec, catalog
"""

from schemas.catalog import EventSchema, SchemaCatalog, catalog
from schemas.codec import EventCodec
from schemas.events import Event

__all__ = ["Event", "EventCodec", "EventSchema", "SchemaCatalog", "catalog"]
