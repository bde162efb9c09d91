"""Schemathesis hooks of ``tests/e2e/test_api_schemathesis.py`` (``SCHEMATHESIS_HOOKS``).

- A ``wait_ms`` the document allows (up to 30 s) is cut to a few milliseconds
  when the request is sent: the server waits that long for a position that is
  never projected, and a run of hundreds of requests must not wait 30 s each.
  The value stays valid, so the case stays what it was generated as.
- A cursor the document allows (URL-safe base64) is, when sent, a real one
  (``$KERNEL_DOORS_CURSOR``, a ``nextCursor`` of the server's): a cursor is an
  opaque token only the server mints, so a made-up one is a 422, rightly. A
  cursor outside the pattern (invalid input) is sent as generated.
- Every request sent is counted by operation, written as JSON to
  ``$KERNEL_DOORS_COUNTS`` when the run ends (the test's table).
"""

from __future__ import annotations

import atexit
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import schemathesis

WAIT_MS = 5
_CURSOR = re.compile(r"[A-Za-z0-9_-]+={0,2}")  # the document's pattern
_SENT: Counter[str] = Counter()


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    query = case.query
    if isinstance(query, dict):
        wait = query.get("wait_ms")
        if isinstance(wait, str) and wait.isascii() and wait.isdigit():
            wait = int(wait)  # the coverage phase sends it as text
        if isinstance(wait, int) and not isinstance(wait, bool) and WAIT_MS < wait <= 30_000:
            query["wait_ms"] = WAIT_MS
        cursor, real = query.get("cursor"), os.environ.get("KERNEL_DOORS_CURSOR")
        if isinstance(cursor, str) and real and _CURSOR.fullmatch(cursor):
            query["cursor"] = real


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    _SENT[f"{case.method.upper()} {case.path}"] += 1


def _write() -> None:
    target = os.environ.get("KERNEL_DOORS_COUNTS")
    if target:
        Path(target).write_text(json.dumps(dict(_SENT)))


atexit.register(_write)
