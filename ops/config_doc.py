"""``docs/configuration.md``, rendered from :data:`ops.config.ENV_VARS`.

The list in ``ops/config.py`` is the one source of what configures Kernel; this
renders it as the operators' reference. Regenerate after changing a setting::

    .venv/bin/python -m ops.config_doc > docs/configuration.md

``tests/unit/ops/test_config_doc.py`` fails while the file is not current.
"""

from __future__ import annotations

import sys

from ops.config import ENV_VARS

__all__ = ["render"]

_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Where Kafka, Postgres and the local stack are", (
        "KERNEL_STATE_DIR", "KERNEL_BOOTSTRAP_SERVERS", "KERNEL_KAFKA_PORT", "KAFKA_HOME",
        "POSTGRES_URL", "KERNEL_PG_PORT", "KERNEL_TOPIC_PREFIX", "KERNEL_SCHEMA_REGISTRY_URL",
    )),
    ("The input contract (what an event may be)", (
        "KERNEL_MAX_EVENT_BYTES", "KERNEL_MAX_RECORD_BYTES", "KERNEL_MAX_JSON_DEPTH",
        "KERNEL_MAX_STRING_BYTES", "KERNEL_MAX_ARRAY_ITEMS", "KERNEL_TS_FUTURE_SKEW_S",
    )),
    ("Tracing (OpenTelemetry)", ("KERNEL_TRACING", "OTEL_EXPORTER_OTLP_ENDPOINT")),
)  # fmt: skip
_OTHER = "Workers, signing, the API, lag and health"


def render() -> str:
    lines = [
        "# Configuration",
        "",
        "Kernel reads its settings from the environment, once, in the composition root",
        "(`ops/bootstrap.py`). This page is generated from `ENV_VARS` in `ops/config.py`",
        "(`python -m ops.config_doc > docs/configuration.md`); a test keeps it current.",
        "Unset variables take the defaults named here.",
    ]
    placed: set[str] = set()
    for title, names in (*_GROUPS, (_OTHER, tuple(ENV_VARS))):
        rows = [n for n in names if n in ENV_VARS and n not in placed]
        if not rows:
            continue
        lines += ["", f"## {title}", "", "| variable | meaning |", "|---|---|"]
        for name in rows:
            meaning = ENV_VARS[name].replace("|", "\\|")
            lines.append(f"| `{name}` | {meaning} |")
            placed.add(name)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
