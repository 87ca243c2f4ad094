"""What operators watch: the Grafana dashboard and the Prometheus alert rules under deploy/ use
only metrics the code defines, and cover what the runbook says to watch."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from vuonminh.shared.runtime import SERVICE_NAMES, load_service

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "deploy" / "grafana" / "vuonminh-operations.json"
ALERTS = REPO / "deploy" / "prometheus" / "vuonminh-alerts.yaml"
METRIC_NAME = re.compile(r"\b(vuonminh_[a-z0-9_]+)")
# Series Prometheus makes itself, not the code.
PROMETHEUS_OWN = {"up"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}


@pytest.fixture(scope="module")
def exposed() -> set[str]:
    """Every series name the processes can expose at /metrics (all services' metrics loaded)."""
    for name in SERVICE_NAMES:
        load_service(name)  # imports each service's own metrics module
    names = set()
    for family in REGISTRY.collect():
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


def _alerts() -> list[dict[str, Any]]:
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in rules["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append((panel["title"], target["expr"]))
    return found


def test_the_alert_rules_are_complete_rules():
    rules = _alerts()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in rules:
        assert rule["expr"].strip(), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]


@pytest.mark.parametrize(
    ("what", "metric"),
    [
        ("lag growing", "vuonminh_consumer_lag"),
        ("outbox stuck", "vuonminh_outbox_oldest_unsent_age_seconds"),
        ("dead letters appearing", "vuonminh_dead_lettered_total"),
        ("signature failures spiking", 'vuonminh_webhooks_rejected_total{reason="signature"}'),
    ],
)
def test_an_alert_watches(what, metric):
    assert any(metric in rule["expr"] for rule in _alerts()), f"no alert on {what} ({metric})"


def test_every_metric_the_alerts_use_exists_in_the_code(exposed):
    unknown = {
        (rule["alert"], name) for rule in _alerts() for name in METRIC_NAME.findall(rule["expr"]) if name not in exposed
    }
    assert not unknown, f"alerts on metrics the code does not define: {sorted(unknown)}"
    for rule in _alerts():
        bare = set(re.findall(r"\b([a-z_]+)\{", rule["expr"])) - {name for name in exposed} - PROMETHEUS_OWN
        assert not bare, (rule["alert"], bare)


def test_the_dashboard_is_valid_and_uses_only_metrics_the_code_defines(exposed):
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    unknown = {(title, name) for title, expr in _dashboard_exprs() for name in METRIC_NAME.findall(expr)}
    unknown = {(title, name) for title, name in unknown if name not in exposed}
    assert not unknown, f"panels on metrics the code does not define: {sorted(unknown)}"
    for template in dashboard["templating"]["list"]:
        for name in METRIC_NAME.findall(json.dumps(template)):
            assert name in exposed, name


def test_the_dashboard_shows_what_an_operator_needs():
    used = " ".join(expr for _, expr in _dashboard_exprs())
    for metric in (
        "vuonminh_webhooks_total",
        "vuonminh_webhook_seconds_bucket",
        "vuonminh_consumer_lag",
        "vuonminh_outbox_pending",
        "vuonminh_outbox_oldest_unsent_age_seconds",
        "vuonminh_dead_lettered_total",
        "vuonminh_carrier_callbacks_total",
        "vuonminh_platform_api_calls_total",
    ):
        assert metric in used, f"the dashboard does not show {metric}"


def test_a_check_catches_an_unknown_metric(exposed):
    """The name check is live: a misspelt metric is reported."""
    assert "vuonminh_consumer_lag" in exposed
    assert "vuonminh_consumer_lags" not in exposed
    assert "vuonminh_webhooks" not in exposed  # a counter is exposed as ..._total


def test_the_carrier_callback_helper_counts_by_result():
    from vuonminh.shared.metrics import CARRIER_CALLBACKS, record_carrier_callback

    record_carrier_callback("ghn-test", "bad_signature")
    record_carrier_callback("ghn-test", "bad_signature")
    assert CARRIER_CALLBACKS.labels("ghn-test", "bad_signature")._value.get() == 2
