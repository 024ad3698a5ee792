"""The outbox: jobs survive a Redis outage and a job lost from Redis, none run twice."""

from __future__ import annotations

import time

from flask import Flask
from redis import Redis
from sqlalchemy import event, select, text

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
        assert message.dispatch_count == 2  # the relay's two checks; the web writes nothing back


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


def test_a_post_commits_once_and_enqueues_after_the_commit(
    app: Flask, db: Database, redis_db: Redis
) -> None:
    commits: list[int] = []
    listener = lambda _connection: commits.append(1)  # noqa: E731 - one-line event hook
    event.listen(db.engine, "commit", listener)
    try:
        plain = app.test_client().post("/api/v1/users", json=user_payload())
        keyed = app.test_client().post(
            "/api/v1/users", json=user_payload(), headers={"Idempotency-Key": "one-commit"}
        )
    finally:
        event.remove(db.engine, "commit", listener)

    assert (plain.status_code, keyed.status_code) == (201, 201)
    assert len(commits) == 2  # one per request: user, outbox row, key and response together
    assert services(app).jobs.queue("default").count == 2
    with db.engine.connect() as connection:
        written_back = "SELECT count(*) FROM outbox WHERE dispatched_at IS NOT NULL"
        assert connection.execute(text(written_back)).scalar_one() == 0


def test_a_rolled_back_request_enqueues_nothing(app: Flask, db: Database, redis_db: Redis) -> None:
    payload = user_payload()
    assert app.test_client().post("/api/v1/users", json=payload).status_code == 201
    assert app.test_client().post("/api/v1/users", json=payload).status_code == 409
    assert services(app).jobs.queue("default").count == 1
