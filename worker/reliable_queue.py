"""A dequeue that leaves a trace, and the sweep that finds jobs whose taker died.

RQ pops a job id with BLPOP whenever a worker listens on more than one queue (its
intermediate list, with BLMOVE, serves one queue only). BLPOP hands the id to whichever
client is blocked: if that process is stopped (a stalled disk, SIGSTOP) or killed before
it registers the job as started, the id is in no list and no registry, and the job hash
says "queued" forever. Here every pop is an atomic move into the queue's intermediate list
(RQ's own key, `<queue>:intermediate`), in priority order, and the move to RQ's started
registry removes it from there in one MULTI (`ServiceWorker.prepare_job_execution`). An
id left in an intermediate list and not started is put back on its queue after
`STRANDED_AFTER_SECONDS` by any worker's housekeeping.

RQ's own cleanup of that list (`IntermediateQueue.cleanup`, in its maintenance) *fails*
a job stranded for a minute; the sweep here gets there first and requeues it instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, cast

from redis import Redis
from rq import Queue
from rq.exceptions import DequeueTimeout
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job

logger = logging.getLogger("worker.reliable_queue")

# A live worker moves a popped id to the started registry within milliseconds; one that
# has not after this long is stopped or dead. If it was only stopped and resumes, the
# job runs twice, which every job allows (docs/jobs.md: at-least-once).
STRANDED_AFTER_SECONDS = 10

# While idle, a worker blocks on its first queue for at most this long between
# non-blocking looks at every queue: a job on a later queue waits at most this long.
POLL_SECONDS = 1.0

# Only if the id is still where we found it: a worker that was merely slow may have
# started it meanwhile (then LREM finds nothing and we leave it alone).
_REQUEUE_IF_STRANDED = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
    redis.call('LPUSH', KEYS[2], ARGV[1])
    return 1
end
return 0
"""


class ReliableQueue(Queue):
    """An RQ queue whose dequeue always moves the id into its intermediate list."""

    @classmethod
    def dequeue_any(
        cls,
        queues: Iterable[Queue],
        timeout: int | None,
        connection: Redis,
        job_class: type[Job] | None = None,
        serializer: Any = None,
        death_penalty_class: Any = None,
    ) -> tuple[Job, Queue] | None:
        ordered = list(queues)
        deadline = None if timeout is None else time.monotonic() + timeout
        options = {
            "job_class": job_class,
            "serializer": serializer,
            "death_penalty_class": death_penalty_class,
        }
        while True:
            popped = _move_first(connection, ordered)
            if popped is None and deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DequeueTimeout(timeout, [queue.key for queue in ordered])
                first = ordered[0]
                # Redis takes a fractional timeout; redis-py's annotation says int.
                wait = cast(int, min(remaining, POLL_SECONDS))
                logger.debug("waiting for a job", extra={"queue": first.name, "seconds": wait})
                job_id = connection.blmove(first.key, first.intermediate_queue_key, wait)
                popped = (first, _text(job_id)) if job_id is not None else None
            if popped is None:
                if deadline is None:
                    return None
                continue
            queue, job_id = popped
            found = cls._fetch_dequeued_job(connection, queue.key, job_id, **options)
            if found is not None:
                return found
            connection.lrem(queue.intermediate_queue_key, 1, job_id)  # its hash is gone


def _move_first(connection: Redis, queues: list[Queue]) -> tuple[Queue, str] | None:
    """Without blocking, move the head of the first non-empty queue (priority order)."""
    for queue in queues:
        job_id = connection.lmove(queue.key, queue.intermediate_queue_key)
        if job_id is not None:
            return queue, _text(job_id)
    return None


def requeue_stranded(
    queues: Iterable[Queue], connection: Redis, *, after_seconds: float = STRANDED_AFTER_SECONDS
) -> list[str]:
    """Put back on its queue every id popped but not started for `after_seconds`."""
    requeue = connection.register_script(_REQUEUE_IF_STRANDED)
    requeued: list[str] = []
    for queue in queues:
        intermediate = IntermediateQueue(queue.key, connection)
        waiting = intermediate.get_job_ids()
        if not waiting:
            continue
        started = set(queue.started_job_registry.get_job_ids(cleanup=False))
        for job_id in waiting:
            if job_id in started:
                continue
            # The first sweep that sees it stamps it; a later one past the grace moves it.
            intermediate.set_first_seen(job_id)
            first_seen = intermediate.get_first_seen(job_id)
            if first_seen is None or time.time() - first_seen.timestamp() < after_seconds:
                continue
            if requeue(keys=[intermediate.key, queue.key], args=[job_id]):
                requeued.append(job_id)
            connection.delete(intermediate.get_first_seen_key(job_id))
    return requeued


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
