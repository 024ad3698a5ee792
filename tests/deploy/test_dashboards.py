"""Every PromQL expression in the dashboard and the alert rules names only metrics that
the service really exports (scraped from a running web and worker process)."""

from __future__ import annotations

import promql_parser
import pytest
import yaml

from devtools.processes import PROJECT_ROOT
from tests.support.promql import alert_rules, expressions, metric_names


def test_metric_names_are_found_through_the_parse_tree() -> None:
    parsed = promql_parser.parse(
        "histogram_quantile(0.9, sum by (le) (rate(a_bucket[5m]))) / clamp_min(b, 1) > c"
    )
    assert sorted(metric_names(parsed)) == ["a_bucket", "b", "c"]


@pytest.mark.parametrize("expr", expressions())
def test_every_expression_parses(expr: str) -> None:
    assert list(metric_names(promql_parser.parse(expr)))


@pytest.mark.parametrize("scrape_job", ["users-api", "users-worker"])
def test_a_process_that_disappears_still_pages(scrape_job: str) -> None:
    """Alerts on a process's own series go silent when it is gone: `up` and `absent`
    must cover each scrape job of deploy/prometheus/prometheus.yml."""
    selector = f'up{{job="{scrape_job}"}}'
    [rule] = [rule for rule in alert_rules() if selector in rule["expr"]]
    assert f"absent({selector})" in rule["expr"]
    assert f"{selector} == 0" in rule["expr"]
    assert rule["labels"]["severity"] == "page"
    scrape_jobs = yaml.safe_load((PROJECT_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert scrape_job in {job["job_name"] for job in scrape_jobs["scrape_configs"]}
