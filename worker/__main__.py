"""`python -m worker`: the RQ worker process, wired from the service's Settings.

    python -m worker [--queues default,exports] [--burst] [--name N] [--log-level L]
    python -m worker check                  exit 0 if this worker's heartbeat is fresh
    python -m worker failed list            jobs that exhausted their retries
    python -m worker failed requeue ID      put one back on its queue

Run it as PID 1 or under an init that forwards signals (`exec` in shell wrappers):
SIGTERM is a warm shutdown (the current job finishes, exit 0), a second SIGTERM or
SIGINT a cold one (the job is killed and retried later: delivery is at-least-once).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import orjson
from prometheus_client.multiprocess import mark_process_dead
from redis.exceptions import RedisError
from rq.job import Job
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from app.features.exports.service import delete_expired_exports
from app.features.job_kinds import JOB_KINDS, queues_of
from app.foundation.config import Settings, load_settings_or_exit
from app.foundation.database import create_db_engine
from app.foundation.idempotency_keys import delete_expired_keys
from app.foundation.log_level import LogLevelSync, log_level_key
from app.foundation.logs import configure_logging
from app.foundation.mail import create_mailer
from app.foundation.parent_death import die_with_parent
from app.foundation.redis_client import create_redis
from app.foundation.tracing import create_tracer_provider, instrument_clients, job_span
from app.jobs.context import JobContext, install_job_context
from app.jobs.outbox import JobOutcomes, OutboxRelay
from app.jobs.queue import JobQueue
from worker import CHILD_METRICS_DIR
from worker.heartbeat import is_fresh
from worker.metrics import WorkerMetrics, serve_processes_metrics
from worker.reliable_queue import requeue_stranded
from worker.scheduling import InProcessScheduler
from worker.service_worker import ServiceWorker
from worker.supervisor import SUPERVISOR_PID, Supervisor

logger = logging.getLogger("worker")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__.splitlines()[0])
    parser.add_argument("--queues", help="comma-separated, in priority order (WORKER_QUEUES)")
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument("--name", help="worker name (default: host name and pid)")
    parser.add_argument("--log-level", help="overrides LOG_LEVEL")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("check", help="liveness: exit 0 if the heartbeat is fresh")
    failed = commands.add_parser("failed", help="jobs that exhausted their retries")
    failed_commands = failed.add_subparsers(dest="action", required=True)
    failed_commands.add_parser("list")
    failed_commands.add_parser("requeue").add_argument("job_id")
    return parser


def run_worker(settings: Settings, *, burst: bool, name: str | None) -> int:
    # Both kept across jobs: the jobs run in this process (worker/service_worker.py).
    engine = create_db_engine(settings)
    mailer = create_mailer(settings)
    tracer_provider = create_tracer_provider(settings, role="job")
    tracer = tracer_provider.get_tracer("app.jobs") if tracer_provider else None
    instrument_clients(settings)
    sessions = sessionmaker(engine, expire_on_commit=False)
    install_job_context(JobContext(settings, engine, sessions, mailer))
    redis = create_redis(settings)
    jobs = JobQueue(redis, settings)
    relay = OutboxRelay(
        sessions,
        jobs,
        min_age_seconds=settings.outbox_relay_age_seconds,
        lease_seconds=settings.outbox_lease_seconds,
        retention_hours=settings.outbox_retention_hours,
    )
    outcomes = JobOutcomes(sessions)
    queues = [jobs.queue(queue_name) for queue_name in settings.queue_names]
    name = name or unique_worker_name()
    scheduler = InProcessScheduler(
        queues, redis, owner=name, lock_seconds=max(10, 3 * settings.outbox_relay_interval)
    )

    def delete_expired() -> None:
        with sessions() as session:
            delete_expired_exports(session)
        with sessions() as session:
            delete_expired_keys(session)

    # Redis steps first, each on its own: a database outage must not stop retries being
    # scheduled or stranded jobs being put back, and a Redis outage not the prune.
    housekeeping = [
        scheduler.tick,
        lambda: _log_requeued(requeue_stranded(queues, redis)),
        outcomes.flush,
        relay.relay,
        relay.prune,
        delete_expired,
    ]

    def job_ended(job: Job, outcome: str) -> None:
        outbox_id = job.meta.get("outbox_id")
        if outbox_id and outcome == "finished":
            outcomes.succeeded(outbox_id)
        elif outbox_id and outcome == "failed":
            outcomes.failed_for_good(outbox_id)
        try:
            outcomes.flush_if_due()
        except SQLAlchemyError as exc:
            logger.warning("recording job outcomes failed", extra={"error": type(exc).__name__})

    LogLevelSync(redis, key=log_level_key(settings), default=settings.log_level).ensure_running()
    metrics = WorkerMetrics(queues, [kind.func for kind in JOB_KINDS])
    if settings.worker_metrics_port:
        metrics.serve(settings.host, settings.worker_metrics_port)
    worker = ServiceWorker(
        list(settings.queue_names),
        connection=redis,
        name=name,
        job_monitoring_interval=settings.worker_job_monitoring_interval,
        # A worker that stops beating disappears from Redis (and from "live workers")
        # within this many seconds; it beats at least every OUTBOX_RELAY_INTERVAL.
        worker_ttl=max(30, 3 * settings.outbox_relay_interval),
        maintenance_interval=settings.worker_maintenance_interval,
        housekeeping=housekeeping,
        housekeeping_interval=settings.outbox_relay_interval,
        heartbeat_file=Path(settings.worker_heartbeat_file),
        job_ended=job_ended,
        job_scope=lambda job: job_span(
            tracer,
            name=job.func_name or "unknown",
            job_id=job.id,
            parent=job.meta.get("trace_context") or {},
        ),
        metrics=metrics,
    )
    try:
        # No RQ scheduler process (worker/scheduling.py): retries are scheduled by the
        # housekeeping above. logging_level=None: RQ must not pin its loggers' levels.
        worker.work(burst=burst, with_scheduler=False, logging_level=None)
    except RedisError as exc:
        logger.error("cannot reach Redis", extra={"error": type(exc).__name__})
        return 1
    finally:
        _quietly(scheduler.release, RedisError)
        _quietly(outcomes.flush, SQLAlchemyError)
        mailer.close()
        engine.dispose()
        if tracer_provider is not None:
            tracer_provider.shutdown()
    return 0


def unique_worker_name() -> str:
    """Host, pid and a random part: a restarted process (same pid as PID 1 in a
    container, or a recycled pid) never meets the dead one's registration, which RQ
    keeps until its TTL and refuses to register over."""
    return f"{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(3)}"


def _log_requeued(job_ids: list[str]) -> None:
    if job_ids:
        # A process popped these and died (or froze) before starting them.
        logger.warning("stranded jobs put back on their queues", extra={"job_ids": job_ids})


def _quietly(step: Callable[[], object], errors: type[Exception]) -> None:
    try:
        step()
    except errors as exc:
        # Harmless: the outbox relay finds these jobs done in Redis, and a lock left
        # behind expires within seconds (app/jobs/outbox.py, worker/scheduling.py).
        logger.warning("cleanup at stop failed", extra={"error": type(exc).__name__})


def _failed(settings: Settings, action: str, job_id: str | None) -> int:
    with create_redis(settings) as redis:
        jobs = JobQueue(redis, settings)
        if action == "list":
            failed = jobs.failed_jobs(queues_of())
            for job in failed:
                sys.stdout.write(orjson.dumps(job).decode() + "\n")
            if not failed:
                # On stderr: stdout stays one JSON object a line, for scripts.
                sys.stderr.write(f"no failed jobs in {', '.join(queues_of())}\n")
            return 0
        assert job_id is not None
        if jobs.requeue_failed(job_id, queues_of()):
            logger.info("failed job requeued", extra={"job_id": job_id})
            return 0
    logger.error("no failed job with this id", extra={"job_id": job_id})
    return 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings_or_exit(log_level=args.log_level, worker_queues=args.queues)
    configure_logging(settings.log_level)
    if args.command == "check":
        files = heartbeat_files(settings)
        fresh = all(is_fresh(file, settings.worker_liveness_seconds) for file in files)
        return 0 if fresh else 1
    if args.command == "failed":
        return _failed(settings, args.action, getattr(args, "job_id", None))
    if settings.worker_processes > 1:
        return _supervise(settings, args)
    if not _die_with_supervisor():
        return 1
    return run_worker(settings, burst=args.burst, name=args.name)


def _die_with_supervisor() -> bool:
    """A supervised child gets SIGTERM (a warm stop) when its supervisor dies, even by
    SIGKILL; False if the supervisor is already gone (it died before we could ask)."""
    supervisor = os.environ.get(SUPERVISOR_PID)
    if not supervisor:
        return True
    die_with_parent()
    return os.getppid() == int(supervisor)


def heartbeat_files(settings: Settings) -> list[Path]:
    """The liveness file of each worker process: one, or one per supervised child."""
    base = settings.worker_heartbeat_file
    if settings.worker_processes == 1:
        return [Path(base)]
    return [Path(f"{base}.{index}") for index in range(settings.worker_processes)]


def _supervise(settings: Settings, args: argparse.Namespace) -> int:
    metrics_dir = tempfile.mkdtemp(prefix="worker-metrics-")
    base_name = args.name or unique_worker_name()
    files = heartbeat_files(settings)
    options = ["--burst"] if args.burst else []
    for flag, value in (("--queues", args.queues), ("--log-level", args.log_level)):
        options += [flag, value] if value else []

    def start_child(index: int, generation: int) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "WORKER_PROCESSES": "1",
            "WORKER_METRICS_PORT": "0",
            "WORKER_HEARTBEAT_FILE": str(files[index]),
            CHILD_METRICS_DIR: metrics_dir,
            SUPERVISOR_PID: str(os.getpid()),
        }
        # The generation in the name: a replacement never meets its predecessor's
        # registration, which lives in Redis until its TTL.
        name = f"{base_name}-{index}.{generation}"
        command = [sys.executable, "-m", "worker", "--name", name, *options]
        # A process group of its own: whatever the child leaves behind dies with it.
        return subprocess.Popen(command, env=env, process_group=0)  # noqa: S603

    try:
        if settings.worker_metrics_port:
            with create_redis(settings) as redis:
                queues = [JobQueue(redis, settings).queue(name) for name in settings.queue_names]
            port = settings.worker_metrics_port
            serve_processes_metrics(settings.host, port, metrics_dir, queues)
        supervisor = Supervisor(
            settings.worker_processes,
            start_child,
            lambda pid: mark_process_dead(pid, metrics_dir),  # type: ignore[no-untyped-call]
            restart=not args.burst,
        )
        return supervisor.run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
