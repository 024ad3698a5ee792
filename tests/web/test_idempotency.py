"""Idempotency-Key: a retried POST returns the original response and creates nothing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from app.web.sessions import Database
from tests.support.factories import user_payload


def _count(db: Database, table: str) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_retries_with_the_same_key_replay_the_first_response(
    client: FlaskClient, db: Database
) -> None:
    body = user_payload()
    headers = {"Idempotency-Key": "create-ann-1"}

    first = client.post("/api/v1/users", json=body, headers=headers)
    retries = [client.post("/api/v1/users", json=body, headers=headers) for _ in range(3)]

    assert first.status_code == 201
    for retry in retries:
        assert retry.status_code == 201
        assert retry.json == first.json
        assert retry.headers["Location"] == first.headers["Location"]
        assert retry.headers["ETag"] == first.headers["ETag"]
        assert retry.headers["Idempotent-Replayed"] == "true"
    assert _count(db, "users") == 1
    assert _count(db, "outbox") == 1


def test_same_key_with_another_body_is_409(client: FlaskClient, db: Database) -> None:
    headers = {"Idempotency-Key": "k-2"}
    client.post("/api/v1/users", json=user_payload(), headers=headers)

    response = client.post("/api/v1/users", json=user_payload(), headers=headers)

    assert response.status_code == 409
    assert response.json["type"] == "/problems/idempotency-key-reused"  # type: ignore[index]
    assert _count(db, "users") == 1


def test_failed_requests_record_no_key_and_keys_are_scoped(
    client: FlaskClient, db: Database
) -> None:
    headers = {"Idempotency-Key": "k-3"}
    assert client.post("/api/v1/users", json={"email": "bad"}, headers=headers).status_code == 422
    assert client.post("/api/v1/users", json=user_payload(), headers=headers).status_code == 201
    export = client.post("/api/v1/exports", headers=headers)
    assert export.status_code == 202
    again = client.post("/api/v1/exports", headers=headers)
    assert again.headers["Location"] == export.headers["Location"]
    assert _count(db, "exports") == 1


def test_malformed_key_is_400(client: FlaskClient) -> None:
    response = client.post(
        "/api/v1/users", json=user_payload(), headers={"Idempotency-Key": "x" * 300}
    )
    assert response.status_code == 400


def test_concurrent_requests_with_one_key_create_one_user(app: Flask, db: Database) -> None:
    body = user_payload()

    def post() -> tuple[int, str]:
        response = app.test_client().post(
            "/api/v1/users", json=body, headers={"Idempotency-Key": "race"}
        )
        kind = response.json.get("type", "") if response.status_code >= 400 else ""  # type: ignore[union-attr]
        return response.status_code, kind

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(), range(8)))

    assert _count(db, "users") == 1
    assert (201, "") in answers
    # The others wait on the key's row for the first to commit, then replay; never
    # "email already registered", which would tell the client its own retry failed.
    assert set(answers) == {(201, "")}


def test_expired_keys_are_deleted(client: FlaskClient, db: Database) -> None:
    from app.foundation.idempotency_keys import delete_expired_keys

    client.post("/api/v1/users", json=user_payload(), headers={"Idempotency-Key": "old"})
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE idempotency_keys SET expires_at = now()"))
    with db.sessionmaker() as session:
        assert delete_expired_keys(session) == 1


def test_the_same_json_spaced_or_ordered_differently_is_the_same_request(
    client: FlaskClient, db: Database
) -> None:
    headers = {"Idempotency-Key": "k-spacing", "Content-Type": "application/json"}
    first = client.post(
        "/api/v1/users", data='{"email": "zoe@example.com", "name": "Zoe"}', headers=headers
    )
    again = client.post(
        "/api/v1/users", data='{ "name":"Zoe",\n  "email":"zoe@example.com" }', headers=headers
    )

    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert _count(db, "users") == 1


def test_a_request_that_dies_leaves_its_key_free_at_once(client: FlaskClient, db: Database) -> None:
    """The key, the work and the response commit together: a request that fails midway
    (a fault injected by a trigger on the real server) leaves no key "in progress"."""
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "CREATE FUNCTION refuse_insert() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'injected fault'; END $$"
            )
        )
        connection.execute(
            text(
                "CREATE TRIGGER refuse_insert BEFORE INSERT ON users "
                "FOR EACH ROW EXECUTE FUNCTION refuse_insert()"
            )
        )
    body, headers = user_payload(), {"Idempotency-Key": "dies-midway"}
    try:
        failed = client.post("/api/v1/users", json=body, headers=headers)
    finally:
        with db.engine.begin() as connection:
            connection.execute(text("DROP TRIGGER refuse_insert ON users"))
            connection.execute(text("DROP FUNCTION refuse_insert()"))
    retried = client.post("/api/v1/users", json=body, headers=headers)

    assert failed.status_code >= 500
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers
    assert _count(db, "users") == 1
