"""Every PromQL expression in the dashboard and the alert rules names only metrics that
the service really exports (scraped from a running web and worker process)."""

from __future__ import annotations

import promql_parser
import pytest

from tests.support.promql import expressions, metric_names


def test_metric_names_are_found_through_the_parse_tree() -> None:
    parsed = promql_parser.parse(
        "histogram_quantile(0.9, sum by (le) (rate(a_bucket[5m]))) / clamp_min(b, 1) > c"
    )
    assert sorted(metric_names(parsed)) == ["a_bucket", "b", "c"]


@pytest.mark.parametrize("expr", expressions())
def test_every_expression_parses(expr: str) -> None:
    assert list(metric_names(promql_parser.parse(expr)))
