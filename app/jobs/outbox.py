"""Transactional outbox: a job is never lost between the database and Redis.

The intent to run a job is a row written in the same transaction as the change that
causes it. After the commit the web process tries to enqueue it at once; whatever that
attempt misses (Redis down, a crash in between, a job lost from Redis) the relay in
every worker process enqueues later. A row counts as done only when its job has
succeeded (or failed for good), so delivery is at-least-once end to end and every job
must be idempotent.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime
from typing import Any, cast

from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import JobStatus
from sqlalchemy import (
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    delete,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, Insert, insert
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from app.foundation.database import Base
from app.foundation.logs import request_context
from app.foundation.tracing import current_trace_context
from app.jobs.queue import JobQueue, JobSpec

logger = logging.getLogger(__name__)


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        # The relay's scan: rows not yet done, oldest first; stays small as done rows age out.
        Index("ix_outbox_pending", "created_at", postgresql_where=text("completed_at IS NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    function: Mapped[str] = mapped_column(String(200))
    queue: Mapped[str] = mapped_column(String(100))
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSONB)
    request_id: Mapped[str | None] = mapped_column(Text)
    # W3C trace context of the request, so the job's span continues its trace.
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispatch_count: Mapped[int] = mapped_column(Integer, default=0)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The job exhausted its retries: it is in RQ's failed registry, an operator's call now.
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def spec(self) -> JobSpec:
        return JobSpec(func=self.function, queue=self.queue)


def new_job(spec: JobSpec, **kwargs: Any) -> OutboxMessage:
    """A job to record in the caller's transaction (`insert_job_statement()`, or `session.add`)."""
    context = request_context.get() or {}
    return OutboxMessage(
        id=uuid.uuid4(),
        function=spec.func,
        queue=spec.queue,
        kwargs=kwargs,
        request_id=context.get("request_id"),
        trace_context=current_trace_context() or None,
    )


def insert_job_statement() -> Insert:
    """A Core INSERT of one outbox row, its values bound by `job_parameters`, to ride in
    one statement with the change that causes it (built once by the caller)."""
    table = cast(Table, OutboxMessage.__table__)
    return insert(table).values(
        {name: bindparam(f"job_{name}", type_=table.c[name].type) for name in _JOB_COLUMNS}
        # Explicit: column defaults are not applied to an INSERT inside a CTE.
        | {"dispatch_count": 0}
    )


def job_parameters(message: OutboxMessage) -> dict[str, Any]:
    return {f"job_{name}": getattr(message, name) for name in _JOB_COLUMNS}


_JOB_COLUMNS = ("id", "function", "queue", "kwargs", "request_id", "trace_context")


def _enqueue(jobs: JobQueue, message: OutboxMessage) -> bool:
    meta = {
        "outbox_id": str(message.id),
        "request_id": message.request_id,
        "trace_context": message.trace_context,
    }
    return jobs.enqueue(message.spec, job_id=str(message.id), kwargs=message.kwargs, meta=meta)


_PENDING = "outbox_pending"


class Outbox:
    """The web side: hand committed jobs to RQ right after the commit, when Redis answers.

    Nothing is written back: the row stays as it was committed, and the relay later asks
    Redis (by job id) about rows whose job has not completed. So a POST costs one commit
    and one Redis round trip, and a crash or a Redis outage right after the commit loses
    nothing."""

    # After a failed enqueue, leave new rows to the relay for a while rather than make
    # every request wait on a Redis that is down.
    BACKOFF_SECONDS = 5.0

    def __init__(self, jobs: JobQueue) -> None:
        self._jobs = jobs
        self._paused_until = 0.0

    def watch(self, sessions: sessionmaker[Session]) -> None:
        """Enqueue the jobs of every commit of these sessions; forget them on rollback."""
        event.listen(sessions, "after_commit", self._dispatch_pending)
        event.listen(sessions, "after_soft_rollback", _forget_pending)

    def dispatch_after_commit(self, session: Session, message: OutboxMessage) -> None:
        session.info.setdefault(_PENDING, []).append(message)

    def _dispatch_pending(self, session: Session) -> None:
        messages: list[OutboxMessage] = session.info.pop(_PENDING, [])
        if not messages or time.monotonic() < self._paused_until:
            return
        for message in messages:
            try:
                _enqueue(self._jobs, message)
            except RedisError as exc:
                self._paused_until = time.monotonic() + self.BACKOFF_SECONDS
                logger.warning(
                    "enqueue failed; the outbox relay will retry",
                    extra={"outbox_id": str(message.id), "error": type(exc).__name__},
                )
                return


def _forget_pending(session: Session, _previous: object) -> None:
    session.info.pop(_PENDING, None)


class OutboxRelay:
    """The worker side: enqueue what the web missed, dispatch again what outlived its
    lease, prune.

    The row is the truth, not Redis: a job can be lost from Redis while its hash says
    "queued" (a BLPOP answered to a process that then died), so a row not completed
    within the lease after its last dispatch is dispatched again whatever Redis holds,
    and the job's own idempotency makes a second run harmless. Only Redis saying the job
    *ended* (finished, or failed for good) is believed: then the worker's mark was lost.
    Rows are claimed with FOR UPDATE SKIP LOCKED, so any number of workers can relay.
    """

    BATCH = 100
    MAX_BATCHES = 20

    def __init__(
        self,
        sessions: sessionmaker[Session],
        jobs: JobQueue,
        *,
        min_age_seconds: int,
        lease_seconds: int,
        retention_hours: int,
    ) -> None:
        self._sessions = sessions
        self._jobs = jobs
        self._min_age = min_age_seconds
        self._lease = lease_seconds
        self._retention = retention_hours

    def relay(self) -> int:
        """Dispatch due rows, batch by batch (bounded per call); returns how many."""
        dispatched = 0
        for _ in range(self.MAX_BATCHES):
            claimed, added = self._relay_batch()
            dispatched += added
            if claimed < self.BATCH:
                break
        if dispatched:
            logger.info("outbox relay dispatched jobs", extra={"count": dispatched})
        return dispatched

    def _relay_batch(self) -> tuple[int, int]:
        dispatched = 0
        with self._sessions() as session, session.begin():
            messages = list(session.scalars(self._due()))
            # One round trip for the batch.
            statuses = self._jobs.statuses([str(message.id) for message in messages])
            for message in messages:
                status = statuses[str(message.id)]
                if status == JobStatus.FINISHED:
                    message.completed_at = func.now()
                elif status == JobStatus.FAILED:
                    message.failed_at = func.now()
                elif self._dispatch(message, status):
                    dispatched += 1
        return len(messages), dispatched

    def _dispatch(self, message: OutboxMessage, status: JobStatus | None) -> bool:
        """Enqueue a row's job unless Redis holds it from a dispatch still in its lease."""
        leased = message.dispatched_at is not None
        message.dispatched_at = func.now()
        message.dispatch_count += 1
        if status is None:
            return _enqueue(self._jobs, message)
        if not leased:
            return False  # the web enqueued it right after the commit: this starts its lease
        logger.warning(
            "outbox job not completed within its lease; dispatched again",
            extra={"outbox_id": str(message.id), "job_status": str(status)},
        )
        try:
            self._jobs.requeue(message.spec, str(message.id))
        except NoSuchJobError:
            return _enqueue(self._jobs, message)  # it expired since we asked
        return True

    def _due(self) -> Any:
        now = func.now()
        never_dispatched = OutboxMessage.dispatched_at.is_(None) & (
            OutboxMessage.created_at < now - func.make_interval(0, 0, 0, 0, 0, 0, self._min_age)
        )
        lease_expired = OutboxMessage.dispatched_at < now - func.make_interval(
            0, 0, 0, 0, 0, 0, self._lease
        )
        return (
            select(OutboxMessage)
            .where(
                OutboxMessage.completed_at.is_(None),
                OutboxMessage.failed_at.is_(None),
                never_dispatched | lease_expired,
            )
            .order_by(OutboxMessage.created_at)
            .limit(self.BATCH)
            .with_for_update(skip_locked=True)
        )

    def prune(self) -> int:
        """Delete rows whose job completed longer ago than the retention period."""
        cutoff = func.now() - func.make_interval(0, 0, 0, 0, self._retention)
        with self._sessions() as session, session.begin():
            result = session.execute(
                delete(OutboxMessage).where(OutboxMessage.completed_at < cutoff)
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


class JobOutcomes:
    """The worker's record of ended jobs, written to the outbox in batches.

    One UPDATE per batch instead of a commit per job. Marks lost with the process cost
    nothing but a check: when the row's lease ends the relay asks RQ, which still holds
    the finished job (its result TTL), and marks the row; past that TTL the job would run
    again, which every job allows (at-least-once)."""

    MAX_BATCH = 200
    MAX_DELAY_SECONDS = 1.0

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._ended: dict[str, list[uuid.UUID]] = {"completed_at": [], "failed_at": []}
        self._oldest = 0.0

    def succeeded(self, outbox_id: str) -> None:
        self._record("completed_at", outbox_id)

    def failed_for_good(self, outbox_id: str) -> None:
        self._record("failed_at", outbox_id)

    def _record(self, column: str, outbox_id: str) -> None:
        if not any(self._ended.values()):
            self._oldest = time.monotonic()
        self._ended[column].append(uuid.UUID(outbox_id))

    def flush_if_due(self) -> None:
        pending = sum(len(ids) for ids in self._ended.values())
        if pending >= self.MAX_BATCH or (
            pending and time.monotonic() - self._oldest >= self.MAX_DELAY_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        """Write every pending mark; on a database error they stay pending (raises)."""
        if not any(self._ended.values()):
            return
        with self._sessions() as session, session.begin():
            for column, ids in self._ended.items():
                if ids:
                    session.execute(
                        update(OutboxMessage)
                        .where(OutboxMessage.id.in_(ids))
                        .values({column: func.now()})
                    )
        self._ended = {column: [] for column in self._ended}
