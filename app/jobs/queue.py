"""The RQ side of background jobs: what a job is, how it is enqueued and retried,
and what operators can see of failed jobs and live workers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq import Queue, Retry, Worker
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry

from app.foundation.config import Settings


@dataclass(frozen=True)
class JobSpec:
    """A kind of job: the function RQ imports and runs, and the queue it goes to."""

    func: str
    queue: str = "default"


class JobQueue:
    """Enqueues jobs under a caller-chosen id, once, with the service's retry policy."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._timeout = settings.job_timeout
        # A finished job stays readable past the outbox lease, so the relay can tell a
        # job that ended from one that was lost (app/jobs/outbox.py).
        self._result_ttl = 2 * settings.outbox_lease_seconds
        self._retry_intervals = settings.retry_intervals()

    def queue(self, name: str) -> Queue:
        return Queue(name, connection=self._redis)

    def enqueue(
        self, spec: JobSpec, *, job_id: str, kwargs: dict[str, Any], meta: dict[str, Any]
    ) -> bool:
        """Enqueue unless a job with this id still exists; True if enqueued now.

        The id makes enqueueing idempotent: the web request and the outbox relay may both
        try, and a job that is queued, running, scheduled for a retry or failed is left
        alone. Raises redis errors: the caller (the outbox) keeps the intent until it works.
        """
        retry = (
            Retry(max=len(self._retry_intervals), interval=self._retry_intervals)
            if self._retry_intervals
            else None
        )
        try:
            self.queue(spec.queue).enqueue_call(
                func=spec.func,
                kwargs=kwargs,
                job_id=job_id,
                timeout=self._timeout,
                result_ttl=self._result_ttl,
                retry=retry,
                meta=meta,
                unique=True,
            )
        except DuplicateJobError:
            return False
        return True

    def statuses(self, job_ids: list[str]) -> dict[str, JobStatus | None]:
        """Each job's status as Redis holds it (None: no such job), in one round trip."""
        with self._redis.pipeline(transaction=False) as pipeline:
            for job_id in job_ids:
                pipeline.hget(Job.key_for(job_id), "status")
            found = pipeline.execute()
        return {
            job_id: JobStatus(status.decode()) if status else None
            for job_id, status in zip(job_ids, found, strict=True)
        }

    def requeue(self, spec: JobSpec, job_id: str) -> None:
        """Put an existing job at the head of its queue, whatever state Redis says it is
        in (queued in no list, started by a process that died, waiting for a retry)."""
        queue = self.queue(spec.queue)
        job = Job.fetch(job_id, connection=self._redis)
        ScheduledJobRegistry(queue=queue).remove(job)  # type: ignore[no-untyped-call]
        queue.enqueue_job(job, at_front=True)

    def seconds_since_heartbeat(self, job_id: str) -> float | None:
        """How long a running job has not been heard from; None if it is not running
        (queued, scheduled for a retry, ended, or unknown)."""
        try:
            job = Job.fetch(job_id, connection=self._redis)
        except NoSuchJobError:
            return None
        if job.get_status(refresh=False) != JobStatus.STARTED or job.last_heartbeat is None:
            return None
        return (datetime.now(UTC) - job.last_heartbeat.replace(tzinfo=UTC)).total_seconds()

    def live_workers(self, queue_name: str) -> int:
        return len(Worker.all(queue=self.queue(queue_name)))

    def failed_jobs(self, queue_names: list[str]) -> list[dict[str, Any]]:
        """Jobs that exhausted their retries, newest registry order, for operators."""
        failed = []
        for name in queue_names:
            registry = FailedJobRegistry(queue=self.queue(name))
            for job in Job.fetch_many(registry.get_job_ids(), connection=self._redis):
                if job is not None:
                    failed.append(_describe_failed(job, name))
        return failed

    def requeue_failed(self, job_id: str, queue_names: list[str]) -> bool:
        """Put a failed job back on its queue with fresh retries; False if unknown."""
        for name in queue_names:
            registry = FailedJobRegistry(queue=self.queue(name))
            if job_id in registry.get_job_ids():
                try:
                    registry.requeue(job_id)
                except NoSuchJobError:
                    return False
                return True
        return False


def _describe_failed(job: Job, queue_name: str) -> dict[str, Any]:
    result = job.latest_result()
    last_error = ((result.exc_string if result else None) or "").strip().splitlines()
    return {
        "id": job.id,
        "queue": queue_name,
        "func": job.func_name,
        "enqueued_at": job.enqueued_at.isoformat() if job.enqueued_at else None,
        "ended_at": job.ended_at.isoformat() if job.ended_at else None,
        "error": last_error[-1] if last_error else None,
        "request_id": job.meta.get("request_id"),
    }
