"""A job that exhausts its retries: listed and requeued by `python -m worker failed` and
by the admin API, then delivered; `python -m worker check` reads the heartbeat file.
The CLI runs in this process; tests/system/test_worker.py runs it as a process."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from pydantic import SecretStr
from redis import Redis
from sqlalchemy import text

from app.factory import create_app
from app.foundation.config import Settings
from app.jobs.outbox import OutboxRelay
from app.web.services import services
from app.web.sessions import Database
from devtools.processes import free_port
from devtools.smtp_sink import SmtpSink
from tests.support.factories import create_user
from tests.support.jobs import run_queued_jobs
from worker.__main__ import main
from worker.heartbeat import beat

TOKEN = "a" * 40


@pytest.fixture
def environment(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The environment an operator's shell would have; returns the heartbeat file."""
    assert settings.database_url is not None
    assert settings.redis_url is not None
    monkeypatch.chdir("/")  # no .env or var/stack.env of the developer's
    heartbeat = tmp_path / "worker.heartbeat"
    for name, value in {
        "APP_ENV": "test",
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "REDIS_URL": settings.redis_url.get_secret_value(),
        "WORKER_HEARTBEAT_FILE": str(heartbeat),
        "WORKER_LIVENESS_SECONDS": "5",
    }.items():
        monkeypatch.setenv(name, value)
    return heartbeat


def test_a_failed_job_is_listed_requeued_and_then_delivered(
    environment: Path,
    settings: Settings,
    db: Database,
    redis_db: Redis,
    sink: SmtpSink,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    admin = {"job_retry_max": 0, "admin_token": SecretStr(TOKEN)}
    app = create_app(settings.model_copy(update=admin))
    client = app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    create_user(client)
    nobody_listens = {"smtp_url": SecretStr(f"smtp://127.0.0.1:{free_port()}"), "smtp_timeout": 1}
    run_queued_jobs(settings, tmp_path, **nobody_listens)

    assert _outbox_ends(db) == (None, "failed")
    relay = OutboxRelay(
        db.sessionmaker,
        services(app).jobs,
        min_age_seconds=0,
        lease_seconds=1,
        retention_hours=24,
    )
    time.sleep(1.1)
    assert relay.relay() == 0  # failed for good: left to the operator, not re-enqueued

    capsys.readouterr()
    assert main(["failed", "list"]) == 0
    [failed] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert failed["func"] == "app.features.users.jobs.send_welcome_email"
    assert failed["error"]
    assert client.get("/admin/jobs/failed", headers=auth).json == {"items": [failed]}

    assert main(["failed", "requeue", "no-such-job"]) == 1
    assert main(["failed", "requeue", failed["id"]]) == 0
    assert client.get("/admin/jobs/failed", headers=auth).json == {"items": []}
    run_queued_jobs(settings, tmp_path, smtp_url=SecretStr(sink.url))

    assert len(sink.wait_for(1, timeout=5)) == 1
    assert _outbox_ends(db) == ("completed", "failed")
    services(app).close()


def _outbox_ends(db: Database) -> tuple[str | None, str | None]:
    with db.engine.connect() as connection:
        completed, failed = connection.execute(
            text("SELECT completed_at, failed_at FROM outbox")
        ).one()
    return ("completed" if completed else None), ("failed" if failed else None)


def test_check_passes_only_while_the_heartbeat_is_fresh(environment: Path) -> None:
    assert main(["check"]) == 1  # no heartbeat yet
    beat(environment)
    assert main(["check"]) == 0
    stale = time.time() - 60
    os.utime(environment, (stale, stale))
    assert main(["check"]) == 1


def test_failed_list_says_so_when_nothing_failed(
    environment: Path, redis_db: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 20: it printed nothing at all, which reads like a hang or an error."""
    assert main(["failed", "list"]) == 0
    printed = capsys.readouterr()
    assert printed.out == ""  # stdout stays JSON lines for scripts
    assert printed.err.startswith("no failed jobs in default")
