"""Every PromQL expression in the dashboard and the alert rules names only metrics that
the service really exports (scraped from a running web and worker process)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import promql_parser
import pytest
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
    dashboard = json.loads(DASHBOARD.read_text())
    alerts = yaml.safe_load(ALERTS.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]] + [
        rule["expr"] for group in alerts["groups"] for rule in group["rules"]
    ]


def test_metric_names_are_found_through_the_parse_tree() -> None:
    parsed = promql_parser.parse(
        "histogram_quantile(0.9, sum by (le) (rate(a_bucket[5m]))) / clamp_min(b, 1) > c"
    )
    assert sorted(metric_names(parsed)) == ["a_bucket", "b", "c"]


@pytest.mark.parametrize("expr", expressions())
def test_every_expression_parses(expr: str) -> None:
    assert list(metric_names(promql_parser.parse(expr)))
