"""Where a record sits in the log."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LogPosition"]


@dataclass(frozen=True, slots=True, order=True)
class LogPosition:
    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"
