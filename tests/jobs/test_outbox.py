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
    options = {"min_age_seconds": 0, "lease_seconds": 900, "retention_hours": 24, **timing}
    return OutboxRelay(db.sessionmaker, JobQueue(redis, settings), **options)


def _relay_until(relay: OutboxRelay, dispatched: int, timeout: float = 10) -> None:
    """Run the relay until one pass dispatches `dispatched` jobs (a lease of 1 s ends)."""
    deadline = time.monotonic() + timeout
    while relay.relay() != dispatched:
        assert time.monotonic() < deadline, "the lease never ended"
        time.sleep(0.1)


def test_a_job_redis_lost_while_its_hash_says_queued_is_dispatched_again_after_its_lease(
    app: Flask, db: Database, redis_db: Redis, settings: Settings
) -> None:
    """Issue 18's reproduction: a BLPOP handed the id to a worker that was stopped, then
    killed. The hash stays `queued` in no queue; the relay used to see the hash and
    leave it alone forever."""
    app.test_client().post("/api/v1/users", json=user_payload())
    queue = services(app).jobs.queue("default")
    [job_id] = queue.get_job_ids()
    relay = _relay(db, redis_db, settings, lease_seconds=1)
    assert relay.relay() == 0  # queued in Redis: this dispatch starts the row's lease
    assert redis_db.lpop(queue.key) == job_id.encode()  # the dead worker's pop

    _relay_until(relay, dispatched=1)

    assert queue.get_job_ids() == [job_id]
    with db.sessionmaker() as session:
        [message] = session.scalars(select(OutboxMessage))
        assert message.dispatch_count == 2
        assert message.completed_at is None


def test_a_job_that_ended_in_redis_is_marked_not_run_again(
    app: Flask, db: Database, redis_db: Redis, settings: Settings
) -> None:
    """The worker died between finishing the job and recording it: Redis still holds
    the finished job (its result TTL outlives the lease), so the row is completed."""
    app.test_client().post("/api/v1/users", json=user_payload())
    queue = services(app).jobs.queue("default")
    [job_id] = queue.get_job_ids()
    relay = _relay(db, redis_db, settings, lease_seconds=1)
    relay.relay()
    redis_db.lpop(queue.key)
    redis_db.hset(f"rq:job:{job_id}", "status", "finished")

    deadline = time.monotonic() + 10
    while _completed(db) is None:
        assert time.monotonic() < deadline
        assert relay.relay() == 0
        time.sleep(0.1)
    assert queue.count == 0


def test_a_job_lost_with_all_of_redis_is_enqueued_again(
    app: Flask, db: Database, redis_db: Redis, settings: Settings
) -> None:
    app.test_client().post("/api/v1/users", json=user_payload())
    relay = _relay(db, redis_db, settings, lease_seconds=1)
    relay.relay()
    redis_db.flushdb()  # Redis lost its data (no persistence, failover to an empty replica)

    _relay_until(relay, dispatched=1)
    assert services(app).jobs.queue("default").count == 1


def _completed(db: Database) -> object:
    with db.engine.connect() as connection:
        return connection.execute(text("SELECT completed_at FROM outbox")).scalar_one()


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
