"""RQ's forking Worker, fitted to the service: JSON log context per job, outbox relay
and housekeeping in the main loop, fast detection of abandoned jobs, a liveness file."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError, StopRequested
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.worker.base import WorkerStatus
from sqlalchemy.exc import SQLAlchemyError

from app.foundation.logs import request_context
from worker.heartbeat import beat
from worker.metrics import WorkerMetrics

logger = logging.getLogger("worker")


class ServiceWorker(Worker):
    """One job at a time in a forked work horse; SIGTERM finishes it (warm shutdown)."""

    # After Redis comes back, retry within seconds, not RQ's default of up to a minute.
    max_connection_wait_time = 5.0

    def __init__(
        self,
        *args: Any,
        housekeeping: Callable[[], None],
        housekeeping_interval: int,
        heartbeat_file: Path,
        job_finished: Callable[[Job, bool], None],
        job_scope: Callable[[Job], AbstractContextManager[None]],
        metrics: WorkerMetrics,
        **kwargs: Any,
    ) -> None:
        # Set before RQ's constructor, which reads dequeue_timeout.
        self._housekeeping = housekeeping
        self._housekeeping_interval = housekeeping_interval
        self._heartbeat_file = heartbeat_file
        self._job_finished = job_finished
        self._job_scope = job_scope
        self._metrics = metrics
        self._next_housekeeping = 0.0
        super().__init__(*args, **kwargs)

    @property
    def dequeue_timeout(self) -> int:
        # Wake up every housekeeping interval even with no job, so the relay keeps running.
        return self._housekeeping_interval

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        beat(self._heartbeat_file)
        self._metrics.heartbeat.set_to_current_time()
        super().heartbeat(timeout, pipeline)

    @property
    def should_run_maintenance_tasks(self) -> bool:
        # Called on every pass of the dequeue loop: our housekeeping throttles itself
        # and RQ's own maintenance keeps its interval.
        return True

    def _shutdown(self) -> None:
        # RQ raises StopRequested from inside the signal handler when idle, i.e. from
        # whatever line was running: inside a database call of the outbox relay it
        # would surface as a driver error and be lost. Record the request instead and
        # stop at the next safe point (run_maintenance_tasks, within one dequeue timeout).
        if self.get_state() == WorkerStatus.BUSY:
            super()._shutdown()
        else:
            self._stop_requested = True
            self.set_shutdown_requested_date()

    def run_maintenance_tasks(self) -> None:
        if self._stop_requested:
            # Before RQ's maintenance, which would restart the stopped scheduler.
            raise StopRequested()
        if super().should_run_maintenance_tasks:
            super().run_maintenance_tasks()
        if time.monotonic() >= self._next_housekeeping:
            self._next_housekeeping = time.monotonic() + self._housekeeping_interval
            try:
                self._housekeeping()
            except (RedisError, SQLAlchemyError) as exc:
                logger.warning(
                    "housekeeping failed; will retry", extra={"error": type(exc).__name__}
                )

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        # RQ adds a fixed 60 s; two missed monitoring intervals are enough to call a job
        # abandoned, so a killed worker's job is retried sooner.
        base = super().get_heartbeat_ttl(job, working_time) - 60
        return base + 2 * int(self.job_monitoring_interval)

    def execute_job(self, job: Job, queue: Queue) -> None:
        # Set in the parent before the fork, so the work horse's lines carry it too.
        token = request_context.set(
            {
                "request_id": job.meta.get("request_id") or "",
                "job_id": job.id,
                "job": job.func_name or "",
            }
        )
        name = job.func_name or "unknown"
        self._metrics.started.labels(name).inc()
        started = time.perf_counter()
        try:
            super().execute_job(job, queue)
        finally:
            self._metrics.duration.labels(name).observe(time.perf_counter() - started)
            self._count_outcome(job, name)
            request_context.reset(token)

    def _count_outcome(self, job: Job, name: str) -> None:
        try:
            status = job.get_status(refresh=True)
        except (RedisError, NoSuchJobError):
            return
        if status == JobStatus.FINISHED:
            self._metrics.finished.labels(name).inc()
        elif status == JobStatus.FAILED:
            self._metrics.failed.labels(name).inc()
        elif status in (JobStatus.SCHEDULED, JobStatus.QUEUED):
            self._metrics.retried.labels(name).inc()

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        # Runs in the work horse, which leaves through os._exit: last chance to clean up.
        with self._job_scope(job):
            succeeded = bool(super().perform_job(job, queue, execution))
        self._job_finished(job, succeeded)
        return succeeded
