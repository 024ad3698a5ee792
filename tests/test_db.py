"""The engine's pool: dead connections are replaced before a request can meet them."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import Engine, text

from app.db import create_db_engine
from tests.conftest import make_settings
from tests.servers import _libpq


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
        monkeypatch.setattr("app.db.PING_AFTER_IDLE_SECONDS", 0.0)
        assert _backend_pid(engine) != first
    finally:
        engine.dispose()
