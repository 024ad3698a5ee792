"""The worker's own Prometheus metrics, served on WORKER_METRICS_PORT.

One worker process records and serves them itself. With WORKER_PROCESSES > 1 each
child records into files of a directory its supervisor owns (prometheus_client's
multiprocess mode, switched on by worker/__main__.py before the library is imported),
and the supervisor serves their sum, plus the queues read from Redis.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from rq import Queue
from rq.registry import FailedJobRegistry

JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class QueueCollector(Collector):
    """Queue depth and failed-registry size, read from Redis at scrape time."""

    def __init__(self, queues: list[Queue]) -> None:
        self._queues = queues

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("rq_queue_depth", "Jobs waiting in the queue.", labels=["queue"])
        failed = GaugeMetricFamily(
            "rq_failed_jobs", "Jobs in the failed registry.", labels=["queue"]
        )
        try:
            for queue in self._queues:
                depth.add_metric([queue.name], queue.count)
                failed.add_metric([queue.name], FailedJobRegistry(queue=queue).count)
        except RedisError:
            return
        yield from (depth, failed)


class WorkerMetrics:
    def __init__(self, queues: list[Queue], job_names: list[str]) -> None:
        self.registry = CollectorRegistry()
        # Not "job": Prometheus adds its own target label of that name and would rename
        # this one exported_job, collapsing per-kind panels.
        labels = ["job_kind"]
        self.started = Counter(
            "rq_jobs_started_total", "Jobs started.", labels, registry=self.registry
        )
        self.finished = Counter(
            "rq_jobs_finished_total", "Jobs that succeeded.", labels, registry=self.registry
        )
        self.failed = Counter(
            "rq_jobs_failed_total", "Jobs that failed for good.", labels, registry=self.registry
        )
        self.retried = Counter(
            "rq_jobs_retried_total",
            "Failed runs scheduled for a retry.",
            labels,
            registry=self.registry,
        )
        self.duration = Histogram(
            "rq_job_duration_seconds",
            "Job run time.",
            labels,
            buckets=JOB_BUCKETS,
            registry=self.registry,
        )
        self.heartbeat = Gauge(
            "rq_worker_last_heartbeat_timestamp_seconds",
            "Last worker heartbeat (Unix time).",
            registry=self.registry,
            # Across the processes of a supervisor: the stalest live one.
            multiprocess_mode="livemin",
        )
        self.registry.register(QueueCollector(queues))
        # Every known job's series exist from the start (at 0): rate() and alerts then
        # see a real zero, not a missing series.
        for name in job_names:
            for metric in (self.started, self.finished, self.failed, self.retried, self.duration):
                metric.labels(name)

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)


def serve_processes_metrics(host: str, port: int, directory: str, queues: list[Queue]) -> None:
    """The supervisor's endpoint: its children's metrics, summed, and the queues."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    registry.register(QueueCollector(queues))
    start_http_server(port, addr=host, registry=registry)
