"""Parse JSON lines into validated events, naming the line and field of each fault.

Pure: no I/O beyond iterating the given lines. ``kernel publish`` uses it to
validate a whole file before anything is sent, so an atomic publish of a file
with a bad line publishes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from schemas.codec import EventCodec
from schemas.errors import KernelError, ValidationError
from schemas.events import Event
from schemas.ijson import loads_ijson

__all__ = ["ParsedLines", "Reject", "parse_lines"]


@dataclass(frozen=True)
class Reject:
    line: int
    field: str | None
    reason: str
    text: str

    def describe(self) -> str:
        where = f"line {self.line}" + (f", field {self.field}" if self.field else "")
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class ParsedLines:
    events: list[tuple[int, Event, bytes]]  # line number, event, encoded record
    rejects: list[Reject]


def parse_lines(lines: Iterable[str], codec: EventCodec) -> ParsedLines:
    events: list[tuple[int, Event, bytes]] = []
    rejects: list[Reject] = []
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text:
            continue
        try:
            event = Event.from_json(loads_ijson(text))
            events.append((number, event, codec.encode(event)))
        except ValidationError as exc:
            rejects.append(Reject(number, exc.field, exc.reason, text))
        except KernelError as exc:
            rejects.append(Reject(number, None, str(exc), text))
    return ParsedLines(events, rejects)
