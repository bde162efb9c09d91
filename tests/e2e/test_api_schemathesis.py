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
FULL_EXAMPLES = int(os.environ.get("KERNEL_DOORS_EXAMPLES", "100"))  # per operation, full run


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
    doors: Doors, who: str, out: Path, max_examples: int, phases: str = PHASES
) -> dict[str, Any]:
    """One run as ``who`` (a role's token; ``cert:<role>``: its client certificate);
    its JSON report, with ``sent``: requests by operation, and ``output``."""
    name = who.replace(":", "-")
    report, counts = out / f"{name}.json", out / f"{name}.counts.json"
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.e2e.doors_hooks",
        "KERNEL_DOORS_COUNTS": str(counts),
        "KERNEL_DOORS_CURSOR": _real_cursor(doors),
        "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    argv = [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(CONFIG)]
    argv += ["run", f"{doors.base_url}/openapi.json", "--tls-verify", str(doors.ca.cert)]
    if who.startswith("cert:"):
        cert = doors.certs[who.removeprefix("cert:")]
        argv += ["--request-cert", str(cert.cert), "--request-cert-key", str(cert.key)]
        # ignored_auth drops the Authorization header and expects a 401: a certificate is
        # on the connection, not in a header, and stays (the matrix knocks without one)
        argv += ["--exclude-checks", "ignored_auth"]
    else:
        argv += ["-H", f"Authorization: Bearer {doors.tokens[who]}"]
    argv += ["--checks", "all", "--phases", phases, "--workers", "1"]
    argv += ["--max-examples", str(max_examples), "--seed", "11", "--request-timeout", "30"]
    argv += ["--report", "json", "--report-json-path", str(report), "--no-color"]
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=600, check=False, cwd=out
    )
    assert report.is_file(), f"schemathesis as {who}:\n{done.stdout[-12000:]}{done.stderr}"
    result: dict[str, Any] = json.loads(report.read_text())
    result["sent"] = json.loads(counts.read_text())
    result["output"] = done.stdout[-12000:] + done.stderr
    result["returncode"] = done.returncode
    return result


def _check_clean(who: str, result: dict[str, Any]) -> None:
    failed = f"schemathesis as {who}:\n{result['output']}"
    assert result["returncode"] == 0, failed
    assert result["failures"] == [], failed
    assert result["errors"] == [], failed
    assert result["operations"]["tested"] == result["operations"]["total"], failed


def test_the_published_document_holds(doors: Doors, tmp_path: Path) -> None:
    """The bounded form: one run as a principal holding every role, so every operation
    is reached past the door (the matrix, tests/e2e/test_api_doors.py, covers who is
    refused where); the full run as each role is ``make test-doors``."""
    result = run_schemathesis(doors, "every-role", tmp_path, max_examples=1)
    _check_clean("every-role", result)
    assert result["sent"].get("POST /events", 0) > 0, result["sent"]
    assert result["sent"].get("GET /audit/events", 0) > 0, result["sent"]


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_the_published_document_holds_for_every_role_in_full(doors: Doors, tmp_path: Path) -> None:
    """As each role's token in turn, and as one role's client certificate (mTLS)."""
    runs: list[tuple[str, dict[str, Any], float]] = []
    for who in [*ROLES, "cert:checker"]:
        started = time.monotonic()
        result = run_schemathesis(doors, who, tmp_path, max_examples=FULL_EXAMPLES)
        runs.append((who, result, time.monotonic() - started))
    print("\nschemathesis, per identity (every check; examples, coverage, fuzzing):")
    print(f"{'identity':<16}{'test cases':>12}{'requests':>10}{'failures':>10}{'seconds':>9}")
    for who, result, seconds in runs:
        cases, sent = result["test_cases"]["generated"], sum(result["sent"].values())
        failures = sum(f["count"] for f in result["failures"]) + len(result["errors"])
        print(f"{who:<16}{cases:>12}{sent:>10}{failures:>10}{seconds:>9.1f}")
    cases = sum(r["test_cases"]["generated"] for _, r, _ in runs)
    print(f"{'total':<16}{cases:>12}{sum(sum(r['sent'].values()) for _, r, _ in runs):>10}")
    for who, result, _ in runs:
        _check_clean(who, result)
