"""The welcome email job, run by the worker's code in process, delivered to a real SMTP
server: one message per user, text and HTML, a stable Message-ID, the outbox row done."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from flask.testing import FlaskClient
from pydantic import SecretStr
from redis import Redis
from sqlalchemy import select, text

from app.features.users.jobs import send_welcome_email
from app.foundation.config import Settings
from app.foundation.mail import create_mailer
from app.jobs.context import JobContext, install_job_context
from app.jobs.outbox import OutboxMessage
from app.web.sessions import Database
from devtools.processes import free_port
from devtools.smtp_sink import SmtpSink
from tests.support.factories import create_user
from tests.support.jobs import run_queued_jobs


def test_each_new_user_gets_one_welcome_email_and_its_outbox_row_completes(
    client: FlaskClient,
    db: Database,
    redis_db: Redis,
    sink: SmtpSink,
    settings: Settings,
    tmp_path: Path,
) -> None:
    wendy = create_user(client, email="wendy@example.com", name="Wendy <W>")
    create_user(client, email="xavier@example.com", name="Xavier")
    smtp = {"smtp_url": SecretStr(sink.url)}

    run_queued_jobs(settings, tmp_path, **smtp)
    run_queued_jobs(settings, tmp_path, **smtp)  # nothing left: nothing sent twice

    messages = sink.wait_for(2, timeout=5)
    assert sorted(str(m["To"]) for m in messages) == [
        '"Wendy <W>" <wendy@example.com>',
        "Xavier <xavier@example.com>",
    ]
    [message] = [m for m in messages if "wendy" in str(m["To"])]
    assert message["Message-ID"] == f"<welcome.{wendy['id']}@example.com>"
    parts = {part.get_content_type(): part.get_content() for part in message.iter_parts()}
    assert "Hello Wendy <W>" in parts["text/plain"]
    assert "Hello Wendy &lt;W&gt;" in parts["text/html"]
    with db.engine.connect() as connection:
        unsent = connection.execute(
            text("SELECT count(*) FROM users WHERE welcome_email_sent_at IS NULL")
        ).scalar_one()
    assert unsent == 0
    with db.sessionmaker() as session:
        assert all(row.completed_at is not None for row in session.scalars(select(OutboxMessage)))
    assert len(sink.messages) == 2


def test_the_users_representation_and_etag_do_not_change_when_the_email_is_sent(
    client: FlaskClient, db: Database, redis_db: Redis, settings: Settings, tmp_path: Path
) -> None:
    user = create_user(client)
    before = client.get(f"/api/v1/users/{user['id']}")

    run_queued_jobs(settings, tmp_path)

    after = client.get(
        f"/api/v1/users/{user['id']}", headers={"If-None-Match": before.headers["ETag"]}
    )
    assert after.status_code == 304
    assert client.get(f"/api/v1/users/{user['id']}").json == before.json


def test_a_patch_does_not_wait_for_the_mail_server_of_a_welcome_email_in_flight(
    client: FlaskClient, db: Database, redis_db: Redis, settings: Settings
) -> None:
    slow = SmtpSink(free_port(), delay=3.0).start()
    user = create_user(client)
    context = JobContext(
        settings,
        db.engine,
        db.sessionmaker,
        create_mailer(settings.model_copy(update={"smtp_url": SecretStr(slow.url)})),
    )
    install_job_context(context)
    sending = threading.Thread(target=send_welcome_email, args=(user["id"],))
    try:
        sending.start()
        assert slow.recorder.receiving.wait(5), "the job reached the mail server"
        started = time.monotonic()
        patched = client.patch(f"/api/v1/users/{user['id']}", json={"name": "Renamed"})
        waited = time.monotonic() - started
        sending.join(10)
    finally:
        install_job_context(None)
        context.mailer.close()
        slow.stop()

    assert patched.status_code == 200
    assert waited < 2.0, f"the PATCH waited {waited:.1f} s for the SMTP conversation"
    assert len(slow.messages) == 1
