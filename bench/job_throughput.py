"""Jobs end to end: no-op jobs/s and welcome emails/s.

Four measurements, on the bench's own Redis database and PostgreSQL database:
- RQ's forking `Worker` against its non-forking `SimpleWorker`, in this process, on a
  no-op job: the price of the worker model alone;
- the service's `python -m worker --burst` on the same no-op job with WORKER_PROCESSES=1
  and 2: the queue is filled first, then the worker drains it and exits;
- the local SMTP server (devtools.smtp_sink, aiosmtpd) alone, the ceiling of the next;
- welcome emails: users created through the service's own POST /api/v1/users (user, outbox
  row, enqueue), then `python -m worker --burst` sends their emails to that SMTP server,
  which counts them by recipient: each user must get exactly one.

Each worker figure is given twice: "incl. start" counts from the worker's launch (imports,
connections, registration: what a restart or a scale-up pays), "from first job" from the
earliest job's start as RQ records it (`started_at`): the steady rate.
"""

from __future__ import annotations

import collections
import os
import signal
import smtplib
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import psycopg
from redis import Redis
from rq import Queue, SimpleWorker, Worker
from rq.job import Job, JobStatus
from rq.worker.base import BaseWorker

from app.foundation.config import Settings
from devtools.processes import free_port, http_call
from devtools.smtp_sink import SmtpSink

ROOT = Path(__file__).resolve().parent.parent
NOOP = "bench.jobs.noop"
# Sized so that each figure spans several seconds and the section stays under 3 minutes
# even at 30 emails/s (at 150 emails/s and 300 no-op jobs/s it takes about 90 s).
RQ_MODEL_JOBS: dict[str, tuple[type[BaseWorker], int]] = {
    "forking Worker": (Worker, 300),
    "SimpleWorker": (SimpleWorker, 1000),
}
NOOP_JOBS = int(os.environ.get("BENCH_NOOP_JOBS", "2000"))
EMAILS = int(os.environ.get("BENCH_EMAILS", "1500"))
WORKER_PROCESSES = (1, 2)
# A burst worker still running after this is stuck (or far below any target).
WORKER_DEADLINE_SECONDS = 150.0
CREATING_THREADS = 8
SINK_MESSAGES = 1000


class Service(Protocol):
    """A running Gunicorn serving the service (bench.run.Server)."""

    port: int

    def stop(self) -> None: ...


StartService = Callable[[str, dict[str, str], Path], Service]


def job_benchmarks(
    database_url: str, redis_url: str, work: Path, start_server: StartService
) -> dict[str, float]:
    """Every figure of the section; `start_server` is bench.run's, passed in."""
    redis = Redis.from_url(redis_url)
    processes = process_counts()
    results: dict[str, float] = {}
    _forget_earlier_jobs(database_url)
    try:
        rq_worker_models(redis, results)
        with _sink() as sink:
            sink_ceiling(sink, results)
            env = worker_env(database_url, redis_url, sink.url, work)
            service_worker_noop(redis, env, processes, work, results)
        welcome_emails(database_url, redis, env, processes, work, start_server, results)
    finally:
        redis.flushdb()
    return results


def _forget_earlier_jobs(database_url: str) -> None:
    """The HTTP section's POSTs left outbox rows whose jobs never ran: a worker's relay
    would enqueue them all again (as it must after Redis lost its data) and time them
    with the jobs measured here."""
    with psycopg.connect(database_url.replace("+psycopg", "", 1)) as connection:
        connection.execute("TRUNCATE outbox")


def worker_env(database_url: str, redis_url: str, smtp_url: str, work: Path) -> dict[str, str]:
    """The worker as production runs it (JSON logs at info), without its metrics port."""
    return {
        "APP_ENV": "production",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SMTP_URL": smtp_url,
        "LOG_LEVEL": "info",
        "METRICS_ENABLED": "false",
        "WORKER_METRICS_PORT": "0",
        "WORKER_QUEUES": "default",
        "WORKER_HEARTBEAT_FILE": str(work / "worker.heartbeat"),
    }


def process_counts() -> tuple[int, ...]:
    """WORKER_PROCESSES values to measure: more than one only once the setting exists, as
    an unknown setting is ignored and one process would be measured under another name."""
    if "worker_processes" in Settings.model_fields:
        return WORKER_PROCESSES
    print("WORKER_PROCESSES is not a setting yet: measuring 1 worker process only", flush=True)
    return WORKER_PROCESSES[:1]


def rq_worker_models(redis: Redis, results: dict[str, float]) -> None:
    """No-op jobs/s of RQ's two worker classes, run in this process."""
    for label, (worker_class, count) in RQ_MODEL_JOBS.items():
        redis.flushdb()
        queue = Queue("bench", connection=redis)
        _fill(queue, count)
        with _own_signal_handlers():
            started = time.perf_counter()
            worker_class([queue], connection=redis).work(burst=True, logging_level="WARNING")
            elapsed = time.perf_counter() - started
        _record(results, f"no-op jobs/s, RQ {label}", count / elapsed)
    redis.flushdb()


def sink_ceiling(sink: SmtpSink, results: dict[str, float]) -> None:
    """What the local SMTP server accepts with nothing else running: one client on one
    connection, in this process (so a lower bound: client and server share the GIL).
    The welcome-email figures below cannot exceed it, and the server's CPU is taken from
    the same two cores as the worker's."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", "x"
    message.set_content("Hello,\n\nwelcome aboard. Your account is ready.\n")
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as client:
        started = time.perf_counter()
        for _ in range(SINK_MESSAGES):
            client.send_message(message)
        elapsed = time.perf_counter() - started
    _record(results, "SMTP sink alone: messages/s, one reused connection", SINK_MESSAGES / elapsed)


def service_worker_noop(
    redis: Redis,
    env: dict[str, str],
    processes: tuple[int, ...],
    work: Path,
    results: dict[str, float],
) -> None:
    """No-op jobs/s of `python -m worker --burst` draining a full queue."""
    for count in processes:
        redis.flushdb()
        ids = _fill(Queue("default", connection=redis), NOOP_JOBS)
        launched = time.time()
        finished = _run_burst_worker(env, count, work / f"worker-noop-{count}.log")
        first_start, last_end = _job_span(redis, ids)
        label = f"no-op jobs/s, python -m worker, WORKER_PROCESSES={count}"
        _record(results, f"{label} (incl. start)", NOOP_JOBS / (finished - launched))
        _record(results, f"{label} (from first job)", NOOP_JOBS / (last_end - first_start))
    redis.flushdb()


def welcome_emails(
    database_url: str,
    redis: Redis,
    env: dict[str, str],
    processes: tuple[int, ...],
    work: Path,
    start_server: StartService,
    results: dict[str, float],
) -> None:
    """Welcome emails/s, from users created through the service to mails received."""
    try:
        for count in processes:
            _empty(database_url, redis)
            # The service runs only while it creates the users: no idle Gunicorn beside
            # the worker while it is timed.
            service = start_server("service", env, work / "service-jobs.log")
            try:
                emails = _create_users(service.port, EMAILS)
            finally:
                service.stop()
            with _sink() as sink:
                launched = time.time()
                last_arrival = _run_burst_worker(
                    {**env, "SMTP_URL": sink.url},
                    count,
                    work / f"worker-mail-{count}.log",
                    sink,
                    len(emails),
                )
                received = _recipients(sink)
            _check_each_mailed(emails, received)
            finished = Queue("default", connection=redis).finished_job_registry.get_job_ids()
            first_start, _ = _job_span(redis, finished)
            label = f"welcome emails/s, python -m worker, WORKER_PROCESSES={count}"
            _record(results, f"{label} (incl. start)", len(emails) / (last_arrival - launched))
            _record(
                results, f"{label} (from first job)", len(emails) / (last_arrival - first_start)
            )
            duplicates = sum(n - 1 for n in received.values())
            _record(results, f"{label}: duplicate emails", duplicates)
    finally:
        _empty(database_url, redis)


def _record(results: dict[str, float], key: str, value: float) -> None:
    results[key] = value
    print(f"{key:80} {value:10.1f}", flush=True)


@contextmanager
def _own_signal_handlers() -> Iterator[None]:
    """RQ's worker installs SIGTERM and SIGINT handlers and leaves them after work(): the
    harness would then ignore SIGTERM (and Ctrl-C) for the rest of the run."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


@contextmanager
def _sink() -> Iterator[SmtpSink]:
    sink = SmtpSink(free_port()).start()
    try:
        yield sink
    finally:
        sink.stop()


def _fill(queue: Queue, count: int) -> list[str]:
    """`count` no-op jobs, enqueued in pipelined batches (the filling is not timed)."""
    ids: list[str] = []
    for start in range(0, count, 500):
        batch = [Queue.prepare_data(NOOP) for _ in range(min(500, count - start))]
        ids.extend(job.id for job in queue.enqueue_many(batch))
    return ids


def _empty(database_url: str, redis: Redis) -> None:
    """No user, outbox row or job left from an earlier run to be relayed into this one."""
    with psycopg.connect(database_url.replace("+psycopg", "")) as connection:
        connection.execute("TRUNCATE users, outbox, idempotency_keys CASCADE")
    redis.flushdb()


def _create_users(port: int, count: int) -> list[str]:
    """`count` users through POST /api/v1/users, a few at a time as clients would."""
    run = uuid.uuid4().hex[:8]
    emails = [f"welcome-{run}-{n}@example.com" for n in range(count)]

    def create(email: str) -> int:
        return http_call("POST", port, "/api/v1/users", {"email": email, "name": "Bench"})[0]

    started = time.perf_counter()
    with ThreadPoolExecutor(CREATING_THREADS) as pool:
        statuses = collections.Counter(pool.map(create, emails))
    if statuses != {201: count}:
        raise RuntimeError(f"creating {count} users answered {dict(statuses)}")
    print(f"{count} users created in {time.perf_counter() - started:.1f} s (not timed)", flush=True)
    return emails


def _run_burst_worker(
    env: dict[str, str],
    processes: int,
    log: Path,
    sink: SmtpSink | None = None,
    expected: int = 0,
) -> float:
    """Run `python -m worker --burst` to its exit. Returns when the sink got its
    `expected`-th message (polled every 5 ms) or, without a sink, when the worker exited."""
    full_env = {**os.environ, **env, "WORKER_PROCESSES": str(processes)}
    with log.open("ab") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "worker", "--burst"],
            env=full_env,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    arrived = None
    deadline = time.monotonic() + WORKER_DEADLINE_SECONDS
    while worker.poll() is None and time.monotonic() < deadline:
        if sink is not None and arrived is None and len(sink.recorder.messages) >= expected:
            arrived = time.time()
        time.sleep(0.005)
    exited = time.time()
    if worker.poll() is None:
        worker.kill()
        worker.wait()
        raise RuntimeError(f"the burst worker ran over {WORKER_DEADLINE_SECONDS} s: see {log}")
    if worker.returncode != 0:
        raise RuntimeError(f"the burst worker exited {worker.returncode}: see {log}")
    return arrived or exited


def _job_span(redis: Redis, ids: list[str]) -> tuple[float, float]:
    """The earliest start and the latest end of these jobs, as RQ recorded them; every one
    must have finished."""
    jobs = [job for job in Job.fetch_many(ids, connection=redis) if job is not None]
    finished = [job for job in jobs if job.get_status(refresh=False) == JobStatus.FINISHED]
    if not ids or len(finished) != len(ids):
        raise RuntimeError(f"{len(ids) - len(finished)} of {len(ids)} jobs did not finish")
    return (
        min(_epoch(job.started_at) for job in finished),
        max(_epoch(job.ended_at) for job in finished),
    )


def _epoch(moment: datetime | None) -> float:
    if moment is None:
        raise RuntimeError("a finished job without started_at or ended_at")
    return moment.timestamp()


def _recipients(sink: SmtpSink) -> collections.Counter[str]:
    """How many messages each address received (the To header, as the service writes it)."""
    addresses = (address for message in sink.messages for address in message["To"].addresses)
    return collections.Counter(address.addr_spec.lower() for address in addresses)


def _check_each_mailed(emails: list[str], received: collections.Counter[str]) -> None:
    """Every user mailed; duplicates are counted by the caller, not refused here."""
    missing = set(emails) - set(received)
    strangers = set(received) - set(emails)
    if missing or strangers:
        raise RuntimeError(
            f"{len(missing)} users got no email, {len(strangers)} unknown recipients"
        )
