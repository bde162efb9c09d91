"""Schemathesis against the API's published OpenAPI document, as each role, over real HTTPS.

The server is the real ``kernel api`` (uvicorn, TLS, real Kafka and Postgres:
:mod:`tests.e2e.doors`); the document is the one it serves at
``/openapi.json``. Schemathesis (its CLI, as a user runs it) generates requests
from the document -- examples, boundary values of every declared limit
(coverage) and random valid and invalid data (fuzzing) -- and runs every check:
no 5xx, every status and content type documented, every body conforming to its
documented schema, invalid input refused, valid input accepted, a request
without credentials refused (``tests/e2e/schemathesis.toml`` lists the few
allowances, each with its reason). The full run is repeated with each role's
token, so an operation is tested both where the role may call it and where it
is 403.

The default suite runs a bounded form (one run, as a principal holding every
role, one example per operation and the boundary values); the full run, as each role in turn, is
``make test-doors`` (``-m slow``), which prints requests per role.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ops.http.tokens import ROLES
from tests.e2e.doors import Doors

HERE = Path(__file__).parent
CONFIG = HERE / "schemathesis.toml"
PHASES = os.environ.get("KERNEL_DOORS_PHASES", "examples,coverage,fuzzing")


def _real_cursor(doors: Doors) -> str:
    conn = http.client.HTTPSConnection("127.0.0.1", doors.port, context=doors.context())
    try:
        auth = {"authorization": f"Bearer {doors.tokens['auditor']}"}
        conn.request("GET", "/audit/events?limit=1", headers=auth)
        page = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    assert page["nextCursor"], page
    return str(page["nextCursor"])


def run_schemathesis(
    doors: Doors, role: str, out: Path, max_examples: int, phases: str = PHASES
) -> dict[str, Any]:
    """One run as ``role``; its JSON report, with ``sent``: requests by operation."""
    report, counts = out / f"{role}.json", out / f"{role}.counts.json"
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.e2e.doors_hooks",
        "KERNEL_DOORS_COUNTS": str(counts),
        "KERNEL_DOORS_CURSOR": _real_cursor(doors),
        "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    argv = [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(CONFIG)]
    argv += ["run", f"{doors.base_url}/openapi.json", "--tls-verify", str(doors.ca.cert)]
    argv += ["-H", f"Authorization: Bearer {doors.tokens[role]}"]
    argv += ["--checks", "all", "--phases", phases, "--workers", "1"]
    argv += ["--max-examples", str(max_examples), "--seed", "11", "--request-timeout", "30"]
    argv += ["--report", "json", "--report-json-path", str(report), "--no-color"]
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=600, check=False, cwd=out
    )
    assert done.returncode == 0, f"schemathesis as {role}:\n{done.stdout[-12000:]}{done.stderr}"
    result: dict[str, Any] = json.loads(report.read_text())
    result["sent"] = json.loads(counts.read_text())
    return result


def _check_clean(role: str, result: dict[str, Any]) -> None:
    assert result["failures"] == [], (role, result["failures"])
    assert result["errors"] == [], (role, result["errors"])
    assert result["operations"]["tested"] == result["operations"]["total"], result["operations"]


def test_the_published_document_holds(doors: Doors, tmp_path: Path) -> None:
    """The bounded form: one run as a principal holding every role, so every operation
    is reached past the door (the matrix, tests/e2e/test_api_doors.py, covers who is
    refused where); the full run as each role is ``make test-doors``."""
    result = run_schemathesis(doors, "every-role", tmp_path, max_examples=1)
    _check_clean("every-role", result)
    assert result["sent"].get("POST /events", 0) > 0, result["sent"]
    assert result["sent"].get("GET /audit/events", 0) > 0, result["sent"]


@pytest.mark.slow
def test_the_published_document_holds_for_every_role_in_full(doors: Doors, tmp_path: Path) -> None:
    rows = []
    for role in ROLES:
        started = time.monotonic()
        result = run_schemathesis(doors, role, tmp_path, max_examples=100)
        _check_clean(role, result)
        sent = sum(result["sent"].values())
        cases = result["test_cases"]["generated"]
        rows.append((role, cases, sent, len(result["failures"]), time.monotonic() - started))
    print("\nschemathesis, per role (every check; examples, coverage, fuzzing):")
    print(f"{'role':<16}{'test cases':>12}{'requests':>10}{'failures':>10}{'seconds':>9}")
    for role, cases, sent, failures, seconds in rows:
        print(f"{role:<16}{cases:>12}{sent:>10}{failures:>10}{seconds:>9.1f}")
    total = sum(r[2] for r in rows)
    print(f"{'total':<16}{sum(r[1] for r in rows):>12}{total:>10}{0:>10}")
