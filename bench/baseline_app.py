"""The baseline: a minimal Flask + SQLAlchemy app doing the same queries as the service,
with nothing else (no logging, metrics, tracing, validation, request ids, problems).

Its POST is the naive write the service is measured against (issue 13): INSERT the user,
COMMIT, then enqueue the welcome job on RQ, with no outbox: a crash or a Redis outage
between the commit and the enqueue loses the job, which the service's outbox prevents."""

from __future__ import annotations

import os
import uuid
from datetime import datetime

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue
from redis import Redis
from rq import Queue
from sqlalchemy import Row, create_engine, text

from app.features.users.jobs import WELCOME_EMAIL

engine = create_engine(os.environ["DATABASE_URL"], pool_size=2, max_overflow=2)
# The service's Redis and queue, so the enqueue costs what the service's would.
welcome_queue = Queue(WELCOME_EMAIL.queue, connection=Redis.from_url(os.environ["REDIS_URL"]))
app = Flask(__name__)


def _user(row: Row[uuid.UUID, str, str, datetime, datetime]) -> dict[str, object]:
    id_, email, name, created_at, updated_at = row
    return {
        "id": str(id_),
        "email": email,
        "name": name,
        "created_at": created_at.isoformat(),
        "updated_at": updated_at.isoformat(),
    }


@app.get("/api/v1/users/<uuid:user_id>")
def get_user(user_id: uuid.UUID) -> ResponseReturnValue:
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT id, email, name, created_at, updated_at FROM users WHERE id = :id"),
            {"id": user_id},
        ).one_or_none()
    if row is None:
        return {"error": "not found"}, 404
    return jsonify(_user(row))


@app.get("/api/v1/users")
def list_users() -> ResponseReturnValue:
    limit = int(request.args.get("limit", 20))
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT id, email, name, created_at, updated_at FROM users "
                "ORDER BY created_at, id LIMIT :limit"
            ),
            {"limit": limit},
        ).all()
    return jsonify({"items": [_user(row) for row in rows], "next": None})


@app.post("/api/v1/users")
def create_user() -> ResponseReturnValue:
    body = request.get_json()
    with engine.begin() as connection:
        row = connection.execute(
            text(
                "INSERT INTO users (id, email, name, version) VALUES (:id, :email, :name, 1) "
                "RETURNING id, email, name, created_at, updated_at"
            ),
            {"id": uuid.uuid4(), "email": body["email"].lower(), "name": body["name"]},
        ).one()
    welcome_queue.enqueue_call(func=WELCOME_EMAIL.func, kwargs={"user_id": str(row[0])})
    return jsonify(_user(row)), 201
