"""The PromQL the deploy files hold: the dashboard's panels and the alert rules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import promql_parser
import yaml

from devtools.processes import PROJECT_ROOT

DASHBOARD = PROJECT_ROOT / "deploy/grafana/dashboards/users-service.json"
ALERTS = PROJECT_ROOT / "deploy/prometheus/alerts.yml"


def metric_names(node: Any) -> Iterator[str]:
    """Names of every selector in a parsed PromQL expression."""
    if isinstance(node, promql_parser.VectorSelector):
        if node.name:
            yield node.name
        return
    for attribute in ("lhs", "rhs", "expr", "param", "vector_selector"):
        child = getattr(node, attribute, None)
        if child is not None:
            yield from metric_names(child)
    for child in getattr(node, "args", None) or []:
        yield from metric_names(child)


def expressions() -> list[str]:
    """Every expression of the dashboard and of the alert rules."""
    dashboard = json.loads(DASHBOARD.read_text())
    alerts = yaml.safe_load(ALERTS.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]] + [
        rule["expr"] for group in alerts["groups"] for rule in group["rules"]
    ]


# Series Prometheus writes itself for every target, not exported by the service.
PROMETHEUS_OWN = frozenset({"up"})


def service_metrics() -> set[str]:
    """The service's metrics the dashboard and the alert rules use."""
    used = {name for expr in expressions() for name in metric_names(promql_parser.parse(expr))}
    return used - PROMETHEUS_OWN


def alert_rules() -> list[dict[str, Any]]:
    alerts = yaml.safe_load(ALERTS.read_text())
    return [rule for group in alerts["groups"] for rule in group["rules"]]
