"""Rules of exports: create, read, stream, expire. No HTTP here."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from redis.exceptions import RedisError
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from app.features.exports.jobs import USERS_EXPORT
from app.features.exports.models import Export, ExportChunk
from app.jobs.outbox import Outbox, OutboxMessage, new_job
from app.jobs.queue import JobQueue


class ExportNotFound(Exception):
    """No export has that id."""


class ExportExpired(Exception):
    """The export existed but its time to live has passed."""


class ExportNotReady(Exception):
    """The export has not finished."""


class ExportService:
    def __init__(
        self,
        session: Session,
        outbox: Outbox,
        jobs: JobQueue,
        *,
        ttl_seconds: int,
        stall_seconds: int,
    ) -> None:
        self._session = session
        self._outbox = outbox
        self._jobs = jobs
        self._ttl = timedelta(seconds=ttl_seconds)
        # A running job beats every WORKER_JOB_MONITORING_INTERVAL: two missed is a stall.
        self._stall_seconds = stall_seconds

    def create(self) -> Export:
        """Add the export and its job to the caller's transaction, which commits them
        (in the web layer, @idempotent, once per request)."""
        export = Export(id=uuid.uuid4(), expires_at=datetime.now(UTC) + self._ttl)
        message = new_job(USERS_EXPORT, export_id=str(export.id))
        self._session.add_all([export, message])
        self._session.flush()
        self._outbox.dispatch_after_commit(self._session, message)
        return export

    def get(self, export_id: uuid.UUID) -> Export:
        export = self._session.get(Export, export_id)
        if export is None:
            raise ExportNotFound(export_id)
        if export.expires_at <= datetime.now(UTC):
            raise ExportExpired(export_id)
        return export

    def worker_warning(self, export: Export) -> str | None:
        """Why an export may not move: no worker on its queue, no queue at all, or the
        worker running it stopped (its progress is stale until the retry starts over)."""
        try:
            if export.status == "queued" and self._jobs.live_workers(USERS_EXPORT.queue) == 0:
                return f"no worker is listening on queue '{USERS_EXPORT.queue}'"
            if export.status == "started":
                return self._stalled(export)
        except RedisError:
            return "the job queue (Redis) is unreachable; the export will go on when it is back"
        return None

    def _stalled(self, export: Export) -> str | None:
        job_id = self._session.scalar(
            select(OutboxMessage.id).where(
                OutboxMessage.kwargs["export_id"].astext == str(export.id)
            )
        )
        if job_id is None:
            return None
        silent = self._jobs.seconds_since_heartbeat(str(job_id))
        if silent is None:
            return "the worker running this export stopped; it will start over when retried"
        if silent > self._stall_seconds:
            return f"the worker running this export has not been heard from for {silent:.0f} s"
        return None

    def chunks(self, export: Export, engine: Engine) -> Iterator[bytes]:
        """The CSV, one stored chunk at a time: memory stays flat for any size.

        Each chunk checks a connection out of `engine` and gives it back before it is
        yielded: a stream is iterated after its request has ended, and a client may stop
        reading at any point (or never start), so nothing may be held across a yield."""
        if export.status != "finished":
            raise ExportNotReady(export.id)
        for seq in range(1, export.chunk_count + 1):
            with engine.connect() as connection:
                data = connection.execute(
                    select(ExportChunk.data).where(
                        ExportChunk.export_id == export.id, ExportChunk.seq == seq
                    )
                ).scalar_one()
            yield data


def delete_expired_exports(session: Session) -> int:
    """Remove expired exports and, by cascade, their CSV chunks."""
    with session.begin():
        result = session.execute(delete(Export).where(Export.expires_at <= datetime.now(UTC)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
