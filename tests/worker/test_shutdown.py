"""A stop asked while the worker waits for a job ends it at once, job or not."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

from redis import Redis
from rq.job import Job, JobStatus

from app.features.users.jobs import WELCOME_EMAIL
from app.foundation.config import Settings
from app.jobs.context import install_job_context
from app.jobs.queue import JobQueue
from app.web.sessions import Database
from worker.__main__ import run_worker


def test_a_job_arriving_after_sigterm_goes_back_to_its_queue(
    settings: Settings, db: Database, redis_db: Redis, tmp_path: Path
) -> None:
    jobs = JobQueue(redis_db, settings)
    job_id = str(uuid.uuid4())

    def stop_then_enqueue() -> None:
        time.sleep(1.0)  # the worker is blocked waiting for a job
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.3)
        jobs.enqueue(WELCOME_EMAIL, job_id=job_id, kwargs={"user_id": job_id}, meta={})

    waiting = settings.model_copy(
        update={
            "worker_metrics_port": 0,
            "worker_heartbeat_file": str(tmp_path / "heartbeat"),
            "outbox_relay_interval": 10,  # the dequeue waits this long
        }
    )
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    sender = threading.Thread(target=stop_then_enqueue)
    started = time.monotonic()
    sender.start()
    try:
        assert run_worker(waiting, burst=False, name=None) == 0
    finally:
        sender.join()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        install_job_context(None)

    assert time.monotonic() - started < 5
    assert Job.fetch(job_id, connection=redis_db).get_status() == JobStatus.QUEUED
    assert jobs.queue(WELCOME_EMAIL.queue).job_ids == [job_id]
