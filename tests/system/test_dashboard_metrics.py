"""Every PromQL expression in the dashboard and the alert rules names only metrics that
the service really exports (scraped from a running web and worker process)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import yaml
from redis import Redis

from app.web.sessions import Database
from devtools.processes import PROJECT_ROOT, free_port, http_call, scrape, start_web, worker
from tests.conftest import make_settings, worker_env

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


def test_every_expression_uses_only_exported_metrics(
    database_url: str, redis_url: str, db: Database, redis_db: Redis, tmp_path: Path
) -> None:
    metrics_port, worker_port = free_port(), free_port()
    web, port = start_web(
        database_url, redis_url, tmp_path / "web.log", METRICS_PORT=str(metrics_port)
    )
    settings = make_settings(database_url=database_url, redis_url=redis_url)
    env = worker_env(settings, tmp_path, WORKER_METRICS_PORT=str(worker_port))
    jobs = worker(env, tmp_path / "worker.log")
    try:
        http_call("POST", port, "/api/v1/users", {"email": "d@example.com", "name": "D"})
        http_call("GET", port, "/api/v1/users")
        exported = {name for name, _ in scrape(metrics_port)}
        jobs.wait_until_http(worker_port, "/metrics")
        exported |= {name for name, _ in scrape(worker_port)}
    finally:
        web.kill()
        jobs.kill()

    found = {name for expr in expressions() for name in metric_names(promql_parser.parse(expr))}
    missing = found - exported
    assert not missing, f"dashboard/alerts use metrics nobody exports: {sorted(missing)}"
    assert len(found) >= 12
