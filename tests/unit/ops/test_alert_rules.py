"""The shipped alert rules are valid and pass their promtool unit tests.

promtool comes from Debian's ``prometheus`` package (``ops/install.sh``). The
dashboard's queries are checked by the same parser, as recording rules.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROM = Path(__file__).resolve().parents[3] / "ops" / "prometheus"
DASHBOARD = Path(__file__).resolve().parents[3] / "ops" / "grafana" / "kernel.json"


def promtool(*args: str, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is missing: run ops/install.sh (Debian package 'prometheus')")
    return subprocess.run(
        [exe, *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_rules_are_valid() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_pass_their_unit_tests() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_every_rule_has_a_test_case() -> None:
    rules = yaml.safe_load((PROM / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    cases = yaml.safe_load((PROM / "alerts_test.yml").read_text())
    tested_firing = {
        t["alertname"]
        for case in cases["tests"]
        for t in case["alert_rule_test"]
        if t["exp_alerts"]
    }
    assert alerts == tested_firing
    assert len(alerts) >= 9


def test_prometheus_config_is_valid(tmp_path: Path) -> None:
    # The API's operator token exists only in a deployment (compose.yaml makes it);
    # promtool insists the file exists, so the copy checked here points at one.
    token = tmp_path / "prometheus.token"
    token.write_text("kt_00000000_placeholder\n")
    text = (PROM / "prometheus.yml").read_text()
    assert "/var/lib/kernel/auth/prometheus.token" in text  # the API scrape authenticates
    config = tmp_path / "prometheus.yml"
    config.write_text(text.replace("/var/lib/kernel/auth/prometheus.token", str(token)))
    shutil.copy(PROM / "alerts.yml", tmp_path / "alerts.yml")
    result = promtool("check", "config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_queries_parse(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:q{i}", "expr": e.replace("$__rate_interval", "5m")}
                    for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    (tmp_path / "dash.yml").write_text(yaml.safe_dump(rules))
    result = promtool("check", "rules", "dash.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
