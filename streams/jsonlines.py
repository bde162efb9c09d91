"""Parse JSON lines into validated events, naming the line and field of each fault.

Pure: no I/O beyond iterating the given lines. ``kernel publish`` uses it to
validate a whole file before anything is sent, so an atomic publish of a file
with a bad line publishes nothing.

Input is bytes, split only on ``\n`` (:func:`split_lines`): ``str.splitlines``
would also split on U+2028, U+0085 and other Unicode line breaks, which JSON
allows raw inside a string. Each line is checked against the codec's input
contract, so a line is refused here, with its number and field, for anything
a worker would refuse later.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from schemas.codec import EventCodec
from schemas.errors import KernelError, ValidationError
from schemas.events import Event
from schemas.ijson import loads_ijson

__all__ = ["ParsedLines", "Reject", "parse_lines", "split_lines"]


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


def split_lines(data: bytes) -> list[bytes]:
    """JSON lines: split on ``\n`` only (a trailing ``\r`` is stripped with the blanks)."""
    return data.split(b"\n")


def parse_lines(lines: Iterable[bytes | str], codec: EventCodec) -> ParsedLines:
    events: list[tuple[int, Event, bytes]] = []
    rejects: list[Reject] = []
    contract = codec.contract
    for number, raw in enumerate(lines, start=1):
        line = raw.strip(b" \t\r\n") if isinstance(raw, bytes) else raw.strip(" \t\r\n")
        if not line:
            continue
        try:
            data = loads_ijson(line, max_depth=contract.max_depth)
            event = Event.from_json(data, contract=contract)
            events.append((number, event, codec.encode(event)))
        except ValidationError as exc:
            rejects.append(Reject(number, exc.field, exc.reason, _text(line)))
        except KernelError as exc:
            rejects.append(Reject(number, None, str(exc), _text(line)))
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            # Not expected past the checks above; still a line's fault, never a traceback.
            rejects.append(Reject(number, None, f"{type(exc).__name__}: {exc}", _text(line)))
    return ParsedLines(events, rejects)


def _text(line: bytes | str) -> str:
    return line.decode("utf-8", "backslashreplace") if isinstance(line, bytes) else line
