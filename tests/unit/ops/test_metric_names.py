"""Dashboards and alerts use only metrics defined in ops/metrics.py; labels stay bounded."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from ops import metrics

ROOT = Path(__file__).resolve().parents[3]
NAME = re.compile(r"\bkernel_[a-z0-9_]+\b")
# Labels that would make cardinality unbounded: one series per event/actor/request.
UNBOUNDED = {"event_id", "eventid", "actor", "request_id", "trace_id", "policy_check_id", "id"}


def _alert_exprs() -> list[str]:
    rules = yaml.safe_load((ROOT / "ops/prometheus/alerts.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((ROOT / "ops/grafana/kernel.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_alerts_reference_only_defined_metrics() -> None:
    used = {n for e in _alert_exprs() for n in NAME.findall(e)}
    assert used
    assert used <= metrics.exposed_names(), used - metrics.exposed_names()


def test_dashboard_references_only_defined_metrics() -> None:
    used = {n for e in _dashboard_exprs() for n in NAME.findall(e)}
    assert len(used) >= 15
    assert used <= metrics.exposed_names(), used - metrics.exposed_names()


def test_the_check_catches_a_typo() -> None:
    assert "kernel_decision_total" not in metrics.exposed_names()
    assert "kernel_decisions_total" in metrics.exposed_names()


def test_every_metric_is_documented_and_bounded() -> None:
    for metric in metrics.ALL_METRICS:
        (family,) = metric.describe()
        assert family.name.startswith("kernel_")
        assert len(family.documentation) > 20, family.name
        labels = set(metric._labelnames)
        assert not labels & UNBOUNDED, (family.name, labels)
        assert len(labels) <= 3, family.name


def test_every_exported_name_is_in_all() -> None:
    exported = {getattr(metrics, n) for n in metrics.__all__ if n.isupper() and n != "ALL_METRICS"}
    assert exported == set(metrics.ALL_METRICS)


# -- every metric an alert reads is set by package code ------------------------------
PACKAGES = ("ops", "streams", "projections", "replay", "schemas")
UPDATE = r"\.\s*(?:labels|inc|dec|set|observe|time)\s*\("


def _variable_of(series: str) -> str:
    """The ops/metrics.py variable whose metric exposes ``series``."""
    for var in metrics.__all__:
        metric = getattr(metrics, var)
        if metric in metrics.ALL_METRICS:
            for family in metric.describe():
                suffixes = metrics._SUFFIXES[family.type]
                if series in {family.name + s for s in suffixes}:
                    return var
    raise AssertionError(f"{series} is not defined in ops/metrics.py")


def _sources() -> str:
    files = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    return "\n".join(p.read_text() for p in files if p != ROOT / "ops" / "metrics.py")


def _set_by_code(var: str, source: str) -> bool:
    return re.search(rf"\b{var}\s*{UPDATE}", source) is not None


def test_every_metric_an_alert_reads_is_set_by_package_code() -> None:
    source = _sources()
    read = {_variable_of(n) for e in _alert_exprs() for n in NAME.findall(e)}
    assert {"AUDIT_VERIFICATIONS", "CHAIN_LENGTH", "CONSUMER_LAG_STATUS"} <= read
    unset = sorted(v for v in read if not _set_by_code(v, source))
    assert not unset, f"alerts read metrics that no code sets: {unset}"


def test_the_set_by_code_check_sees_a_missing_setter() -> None:
    source = _sources()
    assert _set_by_code("DECISIONS", source)
    assert _set_by_code("WORKER_HEARTBEAT_TIMESTAMP", source)
    assert not _set_by_code("CANARY_FLAPS", source)  # no such metric: nothing sets it
    assert not _set_by_code("DECISIONS", "DECISIONS = Counter(...)\nDECISIONS.remove('x')")
    assert _set_by_code("X", "metrics.X.labels('a').inc()")


def test_every_defined_metric_is_set_by_package_code() -> None:
    source = _sources()
    defined = [v for v in metrics.__all__ if getattr(metrics, v) in metrics.ALL_METRICS]
    assert not [v for v in defined if not _set_by_code(v, source)]
