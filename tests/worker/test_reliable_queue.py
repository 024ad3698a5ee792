"""A popped job id is never in no list: it waits in the queue's intermediate list until
the job starts, and goes back to its queue when whoever popped it died."""

from __future__ import annotations

import pytest
from redis import Redis
from rq import Queue
from rq.exceptions import DequeueTimeout
from rq.executions import Execution

from app.foundation.config import Settings
from app.jobs.queue import JobQueue, JobSpec
from worker.reliable_queue import ReliableQueue, requeue_stranded

NOOP = JobSpec(func="builtins.len", queue="exports")


def _queues(redis: Redis) -> list[Queue]:
    return [ReliableQueue(name, connection=redis) for name in ("default", "exports")]


def _enqueue(redis: Redis, settings: Settings, job_id: str) -> None:
    JobQueue(redis, settings).enqueue(NOOP, job_id=job_id, kwargs={"obj": []}, meta={})


def test_a_dequeued_id_waits_in_the_intermediate_list_until_started(
    redis_db: Redis, settings: Settings
) -> None:
    _enqueue(redis_db, settings, "job-1")
    default, exports = _queues(redis_db)

    found = ReliableQueue.dequeue_any([default, exports], timeout=1, connection=redis_db)

    assert found is not None
    job, queue = found
    assert (job.id, queue.name) == ("job-1", "exports")  # a later queue, found without blocking
    assert exports.count == 0
    assert redis_db.lrange(exports.intermediate_queue_key, 0, -1) == [b"job-1"]


def test_an_empty_dequeue_times_out(redis_db: Redis) -> None:
    with pytest.raises(DequeueTimeout):
        ReliableQueue.dequeue_any(_queues(redis_db), timeout=1, connection=redis_db)
    assert ReliableQueue.dequeue_any(_queues(redis_db), timeout=None, connection=redis_db) is None


def test_an_id_popped_by_a_process_that_died_goes_back_to_its_queue(
    redis_db: Redis, settings: Settings
) -> None:
    """The reproduction of issue 18: the id was handed to a worker that never started it
    (stopped, then killed); its hash says queued, and it is in no queue."""
    _enqueue(redis_db, settings, "job-1")
    queues = _queues(redis_db)
    assert ReliableQueue.dequeue_any(queues, timeout=1, connection=redis_db) is not None

    # The first sweep only notes it: a live worker starts a popped job within milliseconds.
    assert requeue_stranded(queues, redis_db, after_seconds=60) == []
    assert requeue_stranded(queues, redis_db, after_seconds=0) == ["job-1"]

    assert queues[1].get_job_ids() == ["job-1"]
    assert redis_db.llen(queues[1].intermediate_queue_key) == 0
    assert requeue_stranded(queues, redis_db, after_seconds=0) == []


def test_a_started_job_is_not_stranded(redis_db: Redis, settings: Settings) -> None:
    _enqueue(redis_db, settings, "job-1")
    queues = _queues(redis_db)
    found = ReliableQueue.dequeue_any(queues, timeout=1, connection=redis_db)
    assert found is not None
    job, queue = found
    with redis_db.pipeline() as pipeline:
        execution = Execution.create(job, ttl=60, pipeline=pipeline)
        queue.started_job_registry.add_execution(execution, pipeline=pipeline, ttl=60)
        pipeline.execute()

    requeue_stranded(queues, redis_db, after_seconds=0)
    assert requeue_stranded(queues, redis_db, after_seconds=0) == []
    assert queue.count == 0
