"""Multiprocess metrics under real Gunicorn: exact totals across workers, deaths and
recycling, on a port of their own."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.web.sessions import Database
from devtools.processes import ServerProcess, descendants, free_port, http_call, scrape, start_web

ROUTE = "/api/v1/users/<uuid:user_id>"


def _requests_for(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], route: str
) -> float:
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "http_request_duration_seconds_count" and dict(labels).get("route") == route
    )


class Stack:
    def __init__(self, process: ServerProcess, port: int, metrics_port: int, metrics_dir: Path):
        self.process, self.port, self.metrics_port, self.metrics_dir = (
            process,
            port,
            metrics_port,
            metrics_dir,
        )


def _start(database_url: str, redis_url: str, tmp_path: Path, **env: str) -> Stack:
    metrics_port, metrics_dir = free_port(), tmp_path / "metrics"
    process, port = start_web(
        database_url,
        redis_url,
        tmp_path / "gunicorn.log",
        METRICS_PORT=str(metrics_port),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        LOG_LEVEL="warning",
        **env,
    )
    return Stack(process, port, metrics_port, metrics_dir)


@pytest.fixture
def four_workers(
    database_url: str, redis_url: str, db: Database, tmp_path: Path
) -> Iterator[Stack]:
    stack = _start(database_url, redis_url, tmp_path, WEB_CONCURRENCY="4")
    yield stack
    stack.process.kill()


def test_one_scrape_counts_every_request_of_every_worker_and_survives_a_killed_worker(
    four_workers: Stack,
) -> None:
    stack = four_workers
    status, headers, _ = http_call(
        "POST", stack.port, "/api/v1/users", {"email": "m@example.com", "name": "M"}
    )
    assert status == 201
    path = headers["Location"]
    for _ in range(200):
        assert http_call("GET", stack.port, path)[0] == 200

    before = scrape(stack.metrics_port)
    assert _requests_for(before, ROUTE) == 200
    by_labels = (("method", "GET"), ("route", ROUTE), ("status", "200"))
    assert before[("http_request_duration_seconds_count", by_labels)] == 200
    # prometheus-flask-exporter's own counter, across the same workers.
    assert before[("http_request_total", (("method", "GET"), ("status", "200")))] == 200
    assert before[("users_created_total", ())] == 1
    worker_memory = before[("gunicorn_process_resident_memory_bytes", (("role", "worker"),))]
    largest = before[("gunicorn_worker_max_resident_memory_bytes", ())]
    assert 4 * largest >= worker_memory > largest > 0  # four workers, summed, no pid label
    assert before[("gunicorn_workers", ())] == 4
    assert ("outbox_backlog", ()) in before

    victim = descendants(stack.process.process.pid)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        live = descendants(stack.process.process.pid)
        if victim not in live and len(live) >= 4:
            break
        time.sleep(0.1)
    for _ in range(10):
        assert http_call("GET", stack.port, path)[0] == 200

    after = scrape(stack.metrics_port)
    assert _requests_for(after, ROUTE) == 210
    assert after[("app_info", (("revision", "unknown"), ("version", "dev")))] == 1


def test_metrics_are_not_served_on_the_public_port(four_workers: Stack) -> None:
    status, headers, _ = http_call("GET", four_workers.port, "/metrics")
    assert status == 404
    assert headers["Content-Type"] == "application/problem+json"
    assert http_call("GET", four_workers.port, "/healthz")[0] == 200


def test_recycled_workers_leave_a_bounded_number_of_metric_files(
    database_url: str, redis_url: str, db: Database, tmp_path: Path
) -> None:
    # Without folding, each recycle would leave a file per metric type: 60 show the bound.
    recycles = 60
    stack = _start(
        database_url,
        redis_url,
        tmp_path,
        WEB_CONCURRENCY="4",
        GUNICORN_PRELOAD_APP="true",
        GUNICORN_MAX_REQUESTS="1",
        GUNICORN_MAX_REQUESTS_JITTER="0",
    )
    try:
        first_started = time.perf_counter()
        scrape(stack.metrics_port)
        first_scrape = time.perf_counter() - first_started
        files_at_start = len(list(stack.metrics_dir.glob("*.db")))
        served = 0
        series_after_first = 0
        while served < recycles:
            try:
                status = http_call("GET", stack.port, "/api/v1/users?limit=1")[0]
            except OSError:
                continue  # a worker closing after its one request may refuse briefly
            assert status == 200
            served += 1
            if served == 1:
                series_after_first = len(scrape(stack.metrics_port))
        # The master retires each exited worker's files in child_exit, a moment after it
        # exits: on a busy machine the last few may still be on their way.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            files = len(list(stack.metrics_dir.glob("*.db")))
            if files <= files_at_start + 4:
                break
            time.sleep(0.2)
        last_started = time.perf_counter()
        samples = scrape(stack.metrics_port)
        last_scrape = time.perf_counter() - last_started
    finally:
        stack.process.kill()

    assert _requests_for(samples, "/api/v1/users") == recycles
    # Flat, and no label that changes with each new worker: Prometheus keeps every
    # series it has seen, so a pid label would grow its storage at every recycle.
    assert len(samples) == series_after_first
    assert not [name for name, labels in samples if "pid" in dict(labels)]
    names = sorted(path.name for path in stack.metrics_dir.glob("*.db"))
    assert files <= files_at_start + 4, f"{files} metric files after {recycles} recycles: {names}"
    # Reported, not asserted: timings belong to the benchmark, not to the suite.
    print(
        f"scrape: first {first_scrape * 1000:.1f} ms, after {recycles} recycles "
        f"{last_scrape * 1000:.1f} ms, {files} files"
    )
