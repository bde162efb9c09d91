"""``kernel api --workers 2`` as an operator runs it: every worker decides and records."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ops.bootstrap import Kernel
from tests import identity
from tests.e2e.conftest import settings_env
from tests.integration.sentinel.test_stream_runner import DENY_BIG, activate
from tests.integration.sentinel.test_sync_check import checks_on_log


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(port: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(
            "POST",
            "/sentinel/check",
            json.dumps(body),
            {"content-type": "application/json", **identity.AUTH},
        )
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def _wait_up(port: int, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, server.communicate()[1]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
        finally:
            conn.close()
    raise AssertionError("kernel api did not come up")


def test_two_workers_each_decide_with_the_live_policies(kernel: Kernel) -> None:
    kernel.producer().publish_batch(activate(DENY_BIG))
    port = _free_port()
    exe = str(Path(sys.executable).with_name("kernel"))
    server = subprocess.Popen(
        [exe, "api", "--workers", "2", "--port", str(port)],
        env=settings_env(kernel.settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_up(port, server)
        # a new connection per request: the two workers share the socket and both answer
        answers = [
            _post(port, {"action": "payments.send", "actor": "a", "context": {"amount": a}})
            for a in [5000, 10] * 6
        ]
    finally:
        server.send_signal(signal.SIGINT)
        stdout, stderr = server.communicate(timeout=60)
    assert [status for status, _ in answers] == [200] * 12
    decisions = [(b["decision"], b["policyId"]) for _, b in answers]
    assert decisions == [("deny", "deny-big"), ("allow", None)] * 6  # no "not loaded" fallback
    on_log = {e.body["policyCheckId"] for e in checks_on_log(kernel, 12)}
    assert {b["policyCheckId"] for _, b in answers} <= on_log
    assert stderr.count("Started server process") == 2  # two workers served
    assert "POST /sentinel/check" not in stdout + stderr  # no access log unless --access-log
