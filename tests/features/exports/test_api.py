"""Users export: 202 + Location, progress while it runs, a streamed CSV, expiry."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask.testing import FlaskClient
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from sqlalchemy import text

from app.foundation.config import Settings
from app.web.sessions import Database
from tests.support.factories import create_user
from tests.support.jobs import run_queued_jobs

USERS = 100_000


def test_empty_export_has_a_header_and_unknown_options_are_refused(
    client: FlaskClient, db: Database, redis_db: Redis, settings: Settings, tmp_path: Path
) -> None:
    assert client.post("/api/v1/exports", json={"format": "xml"}).status_code == 422
    location = client.post("/api/v1/exports", json={}).headers["Location"]
    run_queued_jobs(settings, tmp_path)

    body = client.get(location).json
    assert body is not None
    assert body["progress"] == {"rows_done": 0, "rows_total": 0, "percent": 100.0}
    assert client.get(body["download"]).get_data() == b"id,email,name,created_at\n"


def test_queued_export_says_when_no_worker_listens(
    client: FlaskClient, db: Database, redis_db: Redis
) -> None:
    location = client.post("/api/v1/exports").headers["Location"]

    body = client.get(location).json

    assert body is not None
    assert body["status"] == "queued"
    assert body["warning"] == "no worker is listening on queue 'exports'"
    assert body["download"] is None
    assert client.get(f"{location}/download").status_code == 409


def test_unknown_and_expired_exports(client: FlaskClient, db: Database, redis_db: Redis) -> None:
    assert client.get(f"/api/v1/exports/{uuid.uuid4()}").status_code == 404
    location = client.post("/api/v1/exports").headers["Location"]
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE exports SET expires_at = now() - interval '1 second'"))

    response = client.get(location)

    assert response.status_code == 410
    assert response.mimetype == "application/problem+json"


def test_csv_quotes_every_cell_and_no_cell_becomes_a_spreadsheet_formula(
    client: FlaskClient, db: Database, redis_db: Redis, settings: Settings, tmp_path: Path
) -> None:
    formula = create_user(client, email="-sum@example.com", name='=HYPERLINK("http://evil")')
    plain = create_user(client, email="ann@example.com", name='Ann, "the" first')
    with db.engine.begin() as connection:  # a name from before names were checked
        connection.execute(
            text(
                "INSERT INTO users (id, email, name, version) "
                "VALUES (gen_random_uuid(), 'old@example.com', E'two\\nlines', 1)"
            )
        )
    location = client.post("/api/v1/exports").headers["Location"]
    run_queued_jobs(settings, tmp_path)

    body = client.get(location).json
    assert body is not None
    assert body["progress"]["rows_done"] == 3
    rows = list(csv.reader(io.StringIO(client.get(body["download"]).get_data(as_text=True))))
    assert rows[1] == [
        formula["id"],
        "'-sum@example.com",
        '\'=HYPERLINK("http://evil")',
        formula["created_at"].replace("+00:00", "Z"),
    ]
    assert rows[2][1:3] == ["ann@example.com", 'Ann, "the" first']
    assert rows[2][3] == plain["created_at"].replace("+00:00", "Z")
    assert rows[3][1:3] == ["old@example.com", "two\nlines"]
    assert len(rows) == 4


def test_housekeeping_deletes_expired_exports_and_their_chunks(
    client: FlaskClient, db: Database, redis_db: Redis
) -> None:
    from app.features.exports.service import delete_expired_exports

    client.post("/api/v1/exports")
    client.post("/api/v1/exports")
    with db.engine.begin() as connection:
        export_id = connection.execute(text("SELECT id FROM exports LIMIT 1")).scalar_one()
        connection.execute(
            text("INSERT INTO export_chunks (export_id, seq, data) VALUES (:id, 1, 'x')"),
            {"id": export_id},
        )
        connection.execute(
            text("UPDATE exports SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": export_id},
        )

    with db.sessionmaker() as session:
        assert delete_expired_exports(session) == 1
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM exports")).scalar_one() == 1
        assert connection.execute(text("SELECT count(*) FROM export_chunks")).scalar_one() == 0


def test_a_started_export_whose_worker_went_silent_says_so(
    client: FlaskClient, db: Database, redis_db: Redis, settings: Settings
) -> None:
    location = client.post("/api/v1/exports").headers["Location"]
    [job_id] = Queue("exports", connection=redis_db).job_ids
    job = Job.fetch(job_id, connection=redis_db)
    # The state a worker leaves in Redis when it starts the job, then is SIGKILLed.
    SimpleWorker(["exports"], connection=redis_db).prepare_job_execution(job)
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE exports SET status = 'started', rows_done = 5000"))

    running = client.get(location).json
    job.heartbeat(datetime.now(UTC) - timedelta(seconds=60), ttl=60)
    silent = client.get(location).json
    Job.fetch(job_id, connection=redis_db).set_status(JobStatus.SCHEDULED)  # retry pending
    retrying = client.get(location).json

    assert running is not None
    assert running["warning"] is None
    assert silent is not None
    assert silent["warning"] == "the worker running this export has not been heard from for 60 s"
    assert retrying is not None
    assert retrying["warning"] == (
        "the worker running this export stopped; it will start over when retried"
    )
