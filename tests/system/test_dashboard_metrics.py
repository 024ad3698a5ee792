"""Every PromQL expression in the dashboard and the alert rules names only metrics that
the service really exports (scraped from a running web and worker process)."""

from __future__ import annotations

import time
from pathlib import Path

from redis import Redis

from app.web.sessions import Database
from devtools.processes import free_port, http_call, scrape, start_web, worker
from tests.conftest import make_settings, worker_env
from tests.support.promql import service_metrics


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
    found = service_metrics()
    try:
        http_call("POST", port, "/api/v1/users", {"email": "d@example.com", "name": "D"})
        http_call("GET", port, "/api/v1/users")
        jobs.wait_until_http(worker_port, "/metrics")
        # A request's metrics are written as it ends and a job's as the worker records
        # it: scrape until they are there (or the deadline shows what never came).
        deadline = time.monotonic() + 15
        while True:
            exported = {name for name, _ in scrape(metrics_port)}
            exported |= {name for name, _ in scrape(worker_port)}
            if found <= exported or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        web.kill()
        jobs.kill()

    missing = found - exported
    assert not missing, f"dashboard/alerts use metrics nobody exports: {sorted(missing)}"
    assert len(found) >= 12
