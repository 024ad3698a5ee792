"""RQ's non-forking SimpleWorker, fitted to the service: JSON log context per job,
outbox relay and housekeeping in the loop, fast detection of abandoned jobs, a liveness
file, and each job's outcome handed to the caller.

Not forking is what makes hundreds of jobs a second possible (make bench: a fork per
job costs more than the job): the process keeps its database pool and SMTP connection
across jobs. A job's run time is still bounded: RQ's death penalty (SIGALRM, JOB_TIMEOUT)
raises inside the job, which interrupts Python code and blocking socket calls; what it
cannot interrupt (a C call holding the GIL) the liveness probe ends (docs/jobs.md)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from opentelemetry.instrumentation.utils import suppress_instrumentation
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker
from rq.exceptions import NoSuchJobError, StopRequested
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.worker.base import WorkerStatus
from sqlalchemy.exc import SQLAlchemyError

from app.foundation.logs import request_context
from worker.heartbeat import beat
from worker.metrics import WorkerMetrics
from worker.reliable_queue import ReliableQueue

logger = logging.getLogger("worker")


class ServiceWorker(SimpleWorker):
    """One job at a time in this process; SIGTERM lets it finish (warm shutdown)."""

    # Every dequeue leaves the id in the queue's intermediate list until the job is
    # registered as started (worker/reliable_queue.py).
    queue_class = ReliableQueue
    # After Redis comes back, retry within seconds, not RQ's default of up to a minute.
    max_connection_wait_time = 5.0

    def __init__(
        self,
        *args: Any,
        housekeeping: Sequence[Callable[[], object]],
        housekeeping_interval: int,
        heartbeat_file: Path,
        job_ended: Callable[[Job, str], None],
        job_scope: Callable[[Job], AbstractContextManager[None]],
        metrics: WorkerMetrics,
        **kwargs: Any,
    ) -> None:
        # Set before RQ's constructor, which reads dequeue_timeout.
        self._housekeeping = housekeeping
        self._housekeeping_interval = housekeeping_interval
        self._heartbeat_file = heartbeat_file
        self._job_ended = job_ended
        self._job_scope = job_scope
        self._metrics = metrics
        self._next_housekeeping = 0.0
        self._succeeded = False
        self._last_beat = 0.0
        super().__init__(*args, **kwargs)

    @property
    def dequeue_timeout(self) -> int:
        # Wake up every housekeeping interval even with no job, so the relay keeps running.
        return self._housekeeping_interval

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        # RQ beats up to five times a job, each a Redis round trip; once a second keeps
        # the worker's key (WORKER_TTL) and the liveness file fresh all the same. A beat
        # that rides in one of RQ's pipelines costs no round trip and always goes.
        now = time.monotonic()
        if pipeline is None and now - self._last_beat < 1.0:
            return
        self._last_beat = now
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

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        # Waiting and housekeeping are nobody's request: a pass a second of Redis polls
        # and sweeps must not start traces of their own (only jobs do, in perform_job).
        with suppress_instrumentation():
            result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        if result is not None and self._stop_requested:
            # Asked to stop while waiting for a job: the one that arrived goes back to the
            # head of its queue for another worker, rather than make this shutdown last
            # up to JOB_TIMEOUT.
            job, queue = result
            with self.connection.pipeline() as pipeline:
                queue.push_job_id(job.id, pipeline=pipeline, at_front=True)
                pipeline.lrem(queue.intermediate_queue_key, 1, job.id)
                pipeline.execute()
            raise StopRequested()
        return result

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        # RQ removes the id from the intermediate list only when it listens on one queue
        # (it BLPOPs otherwise); ours always moved it there, so always take it out, in the
        # same MULTI that registers the job as started.
        super().prepare_job_execution(job, remove_from_intermediate_queue=True)

    def run_maintenance_tasks(self) -> None:
        if self._stop_requested:
            # Before RQ's maintenance, which would restart the stopped scheduler.
            raise StopRequested()
        if super().should_run_maintenance_tasks:
            super().run_maintenance_tasks()
        if time.monotonic() >= self._next_housekeeping:
            self._next_housekeeping = time.monotonic() + self._housekeeping_interval
            for step in self._housekeeping:
                try:
                    step()
                except (RedisError, SQLAlchemyError) as exc:
                    logger.warning(
                        "housekeeping failed; will retry", extra={"error": type(exc).__name__}
                    )
                except Exception:
                    # Anything else is a bug, not an outage; it must still not stop the
                    # jobs (a worker that crashed here would crash again on every restart).
                    logger.exception("housekeeping step failed; will retry")

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        # Refreshed every monitoring interval while the job runs (_beating): two missed
        # beats are enough to call a job abandoned, so a killed worker's job is retried
        # within seconds, not after its whole timeout.
        return 2 * int(self.job_monitoring_interval)

    def execute_job(self, job: Job, queue: Queue) -> None:
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
        self._succeeded = False
        try:
            super().execute_job(job, queue)
        finally:
            self._metrics.duration.labels(name).observe(time.perf_counter() - started)
            request_context.reset(token)
        outcome = self._outcome(job)
        if outcome:
            getattr(self._metrics, outcome).labels(name).inc()
            self._job_ended(job, outcome)

    def _outcome(self, job: Job) -> str | None:
        """finished, failed (for good) or retried; None if Redis cannot say."""
        if self._succeeded:
            return "finished"
        try:
            status = job.get_status(refresh=True)
        except (RedisError, NoSuchJobError):
            return None
        if status == JobStatus.FAILED:
            return "failed"
        if status in (JobStatus.SCHEDULED, JobStatus.QUEUED):
            return "retried"
        return None

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        with self._job_scope(job), self._beating(job, execution):
            self._succeeded = bool(super().perform_job(job, queue, execution))
        return self._succeeded

    @contextmanager
    def _beating(self, job: Job, execution: Execution) -> Iterator[None]:
        """Beat for the running job from a thread, as RQ's forking worker does from its
        main process, until the job's own time limit (plus a grace) has passed: a job
        stuck beyond it stops the beats, so it is declared abandoned and retried, and the
        liveness probe restarts this process."""
        stop = threading.Event()
        limit = time.monotonic() + (job.timeout or self.queue_class.DEFAULT_TIMEOUT) + 5

        def beat() -> None:
            while not stop.wait(self.job_monitoring_interval) and time.monotonic() < limit:
                try:
                    with suppress_instrumentation():  # beats are no trace's business
                        self.maintain_heartbeats(job, execution)
                except RedisError as exc:
                    logger.warning("job heartbeat failed", extra={"error": type(exc).__name__})

        thread = threading.Thread(target=beat, name="job-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
