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
