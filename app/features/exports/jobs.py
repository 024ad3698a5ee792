"""Job: write every user to CSV chunks with flat memory, reporting progress as it goes."""

from __future__ import annotations

import uuid

from rq import get_current_job
from sqlalchemy import Connection, delete, func, insert, select, text, update
from sqlalchemy.orm import Session

from app.features.exports.csv_format import COPY_USERS_CSV, HEADER
from app.features.exports.models import Export, ExportChunk
from app.features.users.models import User
from app.jobs.context import job_context
from app.jobs.queue import JobSpec

USERS_EXPORT = JobSpec(func="app.features.exports.jobs.run_export", queue="exports")


def run_export(export_id: str) -> str:
    """Idempotent: a re-run (retry, abandoned job) starts the export over."""
    context = job_context()
    export_uuid = uuid.UUID(export_id)
    with context.sessions() as progress:
        if not _start(progress, export_uuid):
            return "skipped: unknown or already finished"
        try:
            with context.engine.connect() as reader:
                _copy_users(
                    reader,
                    progress,
                    export_uuid,
                    batch=context.settings.export_batch_size,
                    timeout_s=context.settings.job_timeout,
                )
        except Exception as exc:
            _record_failure(progress, export_uuid, exc)
            raise
        _set(progress, export_uuid, status="finished", finished_at=func.now())
    return "finished"


def _start(progress: Session, export_id: uuid.UUID) -> bool:
    export = progress.get(Export, export_id)
    if export is None or export.status == "finished":
        return False
    progress.execute(delete(ExportChunk).where(ExportChunk.export_id == export_id))
    _set(progress, export_id, status="started", started_at=func.now(), rows_done=0, chunk_count=0)
    return True


def _copy_users(
    reader: Connection, progress: Session, export_id: uuid.UUID, *, batch: int, timeout_s: int
) -> None:
    # One REPEATABLE READ snapshot: the total and the rows agree even while users change.
    reader = reader.execution_options(isolation_level="REPEATABLE READ")
    with reader.begin():
        # DB_STATEMENT_TIMEOUT_MS bounds a request's queries. The count and the COPY of the
        # whole table are single statements that may take as long as the job may run.
        reader.execute(
            text("SELECT set_config('statement_timeout', :ms, true)"),
            {"ms": str(timeout_s * 1000)},
        )
        total = reader.scalar(select(func.count()).select_from(User)) or 0
        _set(progress, export_id, rows_total=total)
        cursor = reader.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        seq, done, pending, chunk = 0, 0, 0, bytearray(HEADER)
        # COPY streams: `batch` rows in memory at a time, whatever the table's size.
        with cursor.copy(COPY_USERS_CSV) as copy:
            for row in copy:
                chunk += row
                pending += 1
                if pending == batch:
                    seq, done = seq + 1, done + pending
                    _write_chunk(progress, export_id, seq, bytes(chunk), done)
                    chunk.clear()
                    pending = 0
        if pending or seq == 0:
            _write_chunk(progress, export_id, seq + 1, bytes(chunk), done + pending)


def _write_chunk(progress: Session, export_id: uuid.UUID, seq: int, data: bytes, done: int) -> None:
    progress.execute(insert(ExportChunk).values(export_id=export_id, seq=seq, data=data))
    _set(progress, export_id, rows_done=done, chunk_count=seq)


def _set(progress: Session, export_id: uuid.UUID, **values: object) -> None:
    progress.execute(update(Export).where(Export.id == export_id).values(**values))
    progress.commit()


def _record_failure(progress: Session, export_id: uuid.UUID, error: Exception) -> None:
    progress.rollback()
    job = get_current_job()
    retrying = bool(job is not None and job.retries_left)
    _set(
        progress,
        export_id,
        status="queued" if retrying else "failed",
        error=f"{type(error).__name__}{' (will retry)' if retrying else ''}",
    )
