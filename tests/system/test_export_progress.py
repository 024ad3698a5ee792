"""Users export: 202 + Location, progress while it runs, a streamed CSV, expiry."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import text

from app.foundation.config import Settings
from app.web.sessions import Database
from devtools.processes import worker
from tests.conftest import worker_env

USERS = 100_000


def _insert_users(db: Database, count: int) -> None:
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (id, email, name, version, created_at, updated_at, "
                "welcome_email_sent_at) "
                "SELECT gen_random_uuid(), 'bulk' || n || '@example.com', 'Bulk ' || n, 1, "
                "now() + n * interval '1 microsecond', now(), now() "
                "FROM generate_series(1, :count) AS n"
            ),
            {"count": count},
        )


def test_export_of_100k_users_reports_rising_progress_and_streams_the_csv(
    client: FlaskClient, db: Database, redis_db: Redis, settings: Settings, tmp_path: Path
) -> None:
    _insert_users(db, USERS)
    response = client.post("/api/v1/exports")
    assert response.status_code == 202
    location = response.headers["Location"]
    assert response.json["status"] == "queued"  # type: ignore[index]

    # The COPY of 100k rows takes longer than this statement timeout, meant for requests:
    # the export runs under the job's own timeout instead.
    env = worker_env(settings, tmp_path, EXPORT_BATCH_SIZE="1000", DB_STATEMENT_TIMEOUT_MS="200")
    process = worker(env, tmp_path / "w.log")
    seen: list[int] = []
    try:
        deadline = time.monotonic() + 120
        body = client.get(location).json
        while body["status"] != "finished" and time.monotonic() < deadline:  # type: ignore[index]
            assert body["status"] in ("queued", "started"), body  # type: ignore[index]
            seen.append(body["progress"]["rows_done"])  # type: ignore[index]
            time.sleep(0.01)
            body = client.get(location).json
        assert process.terminate() == 0
    finally:
        process.kill()

    assert body is not None
    assert body["status"] == "finished", process.output()
    assert body["progress"] == {"rows_done": USERS, "rows_total": USERS, "percent": 100.0}
    assert seen == sorted(seen), "progress never goes backwards"
    assert len({n for n in seen if 0 < n < USERS}) >= 2, f"saw no progress in between: {seen}"

    download = client.get(body["download"])
    assert download.status_code == 200
    assert download.mimetype == "text/csv"
    assert download.is_streamed
    rows = list(csv.reader(io.StringIO(download.get_data(as_text=True))))
    assert rows[0] == ["id", "email", "name", "created_at"]
    assert len(rows) == USERS + 1
    assert {row[1] for row in rows[1:]} == {f"bulk{n}@example.com" for n in range(1, USERS + 1)}
