"""RQ's scheduling (retries with a backoff are scheduled jobs), run in the worker's own
loop instead of RQ's forked scheduler process.

RQ's `work(with_scheduler=True)` forks a scheduler that inherits every descriptor of the
worker: when the OOM killer SIGKILLs the worker, the scheduler lives on under PID 1 with
the dead worker's Redis connections (its BLPOP stays registered, so Redis hands it jobs
nobody reads) and its metrics port. Here the same work is a step of housekeeping, so there
is no second process to orphan. The lock is RQ's own key, so this and a plain
`rq worker --with-scheduler` never schedule the same queue at once; its TTL is short
(`lock_seconds`) so that when the holder dies another worker takes over within seconds,
not after RQ's fixed 60 s.
"""

from __future__ import annotations

import logging

from redis import Redis
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler
from rq.scripts import acquire_or_refresh_lock, release_lock
from rq.utils import current_timestamp

logger = logging.getLogger("worker.scheduling")


class InProcessScheduler:
    """Moves due scheduled jobs to their queues, for the queues whose lock it holds."""

    BATCH = 1000

    def __init__(self, queues: list[Queue], connection: Redis, *, owner: str, lock_seconds: int):
        self._queues = queues
        self._connection = connection
        self._owner = owner
        self._lock_seconds = lock_seconds
        self._held: set[str] = set()

    @property
    def held(self) -> frozenset[str]:
        """The queues this process schedules now."""
        return frozenset(self._held)

    def tick(self) -> int:
        """Take or refresh the locks, then enqueue what is due; returns how many."""
        moved = 0
        for queue in self._queues:
            key = RQScheduler.get_locking_key(queue.name)
            outcome = acquire_or_refresh_lock(
                self._connection, key, self._owner, self._lock_seconds
            )
            if outcome == "taken":
                self._held.discard(queue.name)
                continue
            if queue.name not in self._held:
                logger.info("scheduler lock acquired", extra={"queue": queue.name})
                self._held.add(queue.name)
            moved += self._enqueue_due(queue)
        return moved

    def _enqueue_due(self, queue: Queue) -> int:
        registry = ScheduledJobRegistry(queue=queue)  # type: ignore[no-untyped-call]
        job_ids = registry.get_jobs_to_schedule(current_timestamp(), chunk_size=self.BATCH)
        if not job_ids:
            return 0
        jobs = Job.fetch_many(job_ids, connection=self._connection)
        with self._connection.pipeline() as pipeline:
            for job_id, job in zip(job_ids, jobs, strict=True):
                if job is not None:
                    queue.enqueue_job(
                        job, pipeline=pipeline, at_front=job.should_enqueue_at_front()
                    )
                registry.remove(job_id, pipeline=pipeline)
            pipeline.execute()
        return sum(job is not None for job in jobs)

    def release(self) -> None:
        """Give the locks back at a clean stop, so another worker schedules at once."""
        for name in self._held:
            release_lock(self._connection, RQScheduler.get_locking_key(name), self._owner)
        self._held.clear()
