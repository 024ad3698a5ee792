"""The engine's pool: dead connections are replaced before a request can meet them."""

from __future__ import annotations

import psycopg
import pytest
from flask import Flask
from psycopg.pq import TransactionStatus
from sqlalchemy import Engine, text

from app.foundation.database import create_db_engine
from app.web.sessions import Database
from tests.conftest import make_settings
from tests.support.servers import _libpq


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_an_idle_connection_killed_by_the_server_is_replaced_at_checkout(
    database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_db_engine(
        make_settings(database_url=database_url, redis_url=redis_url, db_pool_size=1)
    )
    try:
        first = _backend_pid(engine)
        with psycopg.connect(_libpq(database_url), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        # The pooled connection is dead; once it has been idle past the window, checkout
        # pings it, throws it away and opens another: the caller never sees an error.
        monkeypatch.setattr("app.foundation.database.PING_AFTER_IDLE_SECONDS", 0.0)
        assert _backend_pid(engine) != first
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("method", "status"),
    [
        ("GET", TransactionStatus.IDLE),  # no BEGIN, so no ROLLBACK at the end
        ("HEAD", TransactionStatus.IDLE),
        ("POST", TransactionStatus.INTRANS),
        ("PATCH", TransactionStatus.INTRANS),
    ],
)
def test_reads_run_without_a_transaction_and_writes_within_one(
    app: Flask,
    db: Database,
    method: str,
    status: TransactionStatus,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every checkout pings first: the ping must leave the connection ready for autocommit.
    monkeypatch.setattr("app.foundation.database.PING_AFTER_IDLE_SECONDS", 0.0)
    with app.test_request_context(method=method):
        session = db.session
        assert session.execute(text("SELECT 1")).scalar_one() == 1
        driver = session.connection().connection.dbapi_connection
        assert driver is not None
        assert driver.info.transaction_status == status
