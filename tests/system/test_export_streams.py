"""A streamed download gives back its pooled connection however it ends: read fully,
dropped midway, or never read at all. One web worker with the default pool (one
connection and one overflow per engine): a leak shows at the second or third download."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

from redis import Redis
from sqlalchemy import text

from app.foundation.config import Settings
from app.web.sessions import Database
from devtools.processes import free_port, http_call, scrape, start_web
from tests.support.jobs import run_queued_jobs

USERS = 450  # five chunks of EXPORT_BATCH_SIZE=100
TIMES = 4


def _finished_export(db: Database, settings: Settings, port: int, tmp_path: Path) -> str:
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (id, email, name, version, created_at, updated_at, "
                "welcome_email_sent_at) SELECT gen_random_uuid(), 'bulk' || n || '@example.com',"
                " 'Bulk ' || n, 1, now(), now(), now() FROM generate_series(1, :count) AS n"
            ),
            {"count": USERS},
        )
    status, headers, _ = http_call("POST", port, "/api/v1/exports")
    assert status == 202
    run_queued_jobs(settings, tmp_path, export_batch_size=100)
    body = http_call("GET", port, headers["Location"])[2]
    assert body["status"] == "finished", body
    return str(body["download"])


def _raw_get(port: int, path: str, read_bytes: int) -> None:
    """Send a GET, read at most `read_bytes` of the answer, and hang up."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        if read_bytes:
            connection.recv(read_bytes)


def test_downloads_read_fully_halfway_or_not_at_all_leave_the_pool_as_it_was(
    db: Database, redis_db: Redis, settings: Settings, tmp_path: Path
) -> None:
    assert settings.database_url is not None
    assert settings.redis_url is not None
    metrics_port = free_port()
    web, port = start_web(
        settings.database_url.get_secret_value(),
        settings.redis_url.get_secret_value(),
        tmp_path / "web.log",
        WEB_CONCURRENCY="1",
        METRICS_PORT=str(metrics_port),
    )
    try:
        download = _finished_export(db, settings, port, tmp_path)
        user = http_call("POST", port, "/api/v1/users", {"email": "a@example.com", "name": "A"})
        user_path = f"/api/v1/users/{uuid.UUID(user[2]['id'])}"
        for _ in range(TIMES):
            status, _, body = http_call("GET", port, download)
            assert status == 200
            assert body.count("\n") == USERS + 1
            _raw_get(port, download, read_bytes=2000)  # the client goes away midway
            _raw_get(port, download, read_bytes=0)  # the body is never read
        answers = [http_call("GET", port, user_path, timeout=10)[0] for _ in range(5)]
        in_use = scrape(metrics_port)[("db_pool_connections_in_use", (("pool", "read"),))]
        assert web.terminate() == 0
    finally:
        web.kill()
    assert answers == [200] * 5, web.output()[-3000:]
    assert in_use == 0
