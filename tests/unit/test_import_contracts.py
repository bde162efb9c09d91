"""The processor contract of .importlinter names every stream module that is not an adapter.

`make lint` runs the contracts (lint-imports); this keeps the list from going stale:
a new processor module that is not in it would escape the "no Kafka or Postgres
client" rule.
"""

from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _processor_modules() -> set[str]:
    out = set()
    for path in (ROOT / "streams").rglob("*.py"):
        rel = path.relative_to(ROOT)
        if "kafka" in rel.parts or path.name.startswith("kafka_") or path.name == "__init__.py":
            continue  # the adapters: streams/kafka/* and streams/*/kafka_*.py
        out.add(".".join(rel.with_suffix("").parts))
    return out


def test_the_processor_contract_lists_every_non_adapter_stream_module() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    listed = set(config["importlinter:contract:processors"]["source_modules"].split())
    assert listed == _processor_modules()
