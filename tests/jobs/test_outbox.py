"""The outbox: jobs survive a Redis outage and a job lost from Redis, none run twice."""

from __future__ import annotations

import time

from flask import Flask
from redis import Redis
from sqlalchemy import select, text

from app.foundation.config import Settings
from app.jobs.outbox import OutboxMessage, OutboxRelay
from app.jobs.queue import JobQueue
from app.web.services import services
from app.web.sessions import Database
from tests.support.factories import user_payload


def _relay(db: Database, redis: Redis, settings: Settings, **timing: int) -> OutboxRelay:
    options = {"min_age_seconds": 0, "redispatch_seconds": 900, "retention_hours": 24, **timing}
    return OutboxRelay(db.sessionmaker, JobQueue(redis, settings), **options)


def test_relay_re_enqueues_a_job_lost_from_redis_but_leaves_a_queued_one(
    app: Flask, db: Database, redis_db: Redis, settings: Settings
) -> None:
    client = app.test_client()
    client.post("/api/v1/users", json=user_payload())
    queue = services(app).jobs.queue("default")
    assert queue.count == 1  # dispatched right after the commit

    relay = _relay(db, redis_db, settings, redispatch_seconds=1)
    time.sleep(1.1)
    assert relay.relay() == 0  # still queued in Redis: the unique job id keeps it single
    assert queue.count == 1

    redis_db.flushdb()  # Redis lost its data (no persistence, failover to an empty replica)
    time.sleep(1.1)
    assert relay.relay() == 1
    assert queue.count == 1
    with db.sessionmaker() as session:
        [message] = session.scalars(select(OutboxMessage))
        assert message.dispatch_count == 3


def test_prune_deletes_only_long_completed_rows(
    app: Flask, db: Database, redis_db: Redis, settings: Settings
) -> None:
    client = app.test_client()
    for _ in range(3):
        client.post("/api/v1/users", json=user_payload())
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE outbox SET completed_at = now() - interval '2 days' "
                "WHERE id = (SELECT id FROM outbox LIMIT 1)"
            )
        )
        connection.execute(
            text("UPDATE outbox SET completed_at = now() WHERE completed_at IS NULL")
        )

    assert _relay(db, redis_db, settings).prune() == 1
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM outbox")).scalar_one() == 2


def test_a_database_error_after_the_commit_does_not_fail_the_request(
    app: Flask, db: Database, redis_db: Redis
) -> None:
    """The user is committed before the dispatch bookkeeping: a failure there (injected
    by a trigger on the real server) must not answer 503 for a user that exists."""
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "CREATE FUNCTION refuse_update() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'injected fault'; END $$"
            )
        )
        connection.execute(
            text(
                "CREATE TRIGGER refuse_update BEFORE UPDATE ON outbox "
                "FOR EACH ROW EXECUTE FUNCTION refuse_update()"
            )
        )
    try:
        response = app.test_client().post("/api/v1/users", json=user_payload())
    finally:
        with db.engine.begin() as connection:
            connection.execute(text("DROP TRIGGER refuse_update ON outbox"))
            connection.execute(text("DROP FUNCTION refuse_update()"))

    assert response.status_code == 201
    assert app.test_client().get(response.headers["Location"]).status_code == 200
    assert services(app).jobs.queue("default").count == 1  # enqueued before the failure
    with db.engine.connect() as connection:
        undispatched = "SELECT count(*) FROM outbox WHERE dispatched_at IS NULL"
        assert connection.execute(text(undispatched)).scalar_one() == 1  # the relay's
