"""The SQLAlchemy engines (one pool each per process) and the declarative base."""

from __future__ import annotations

import os
import time
import weakref
from typing import Any

import psycopg
from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase

from app.foundation.config import Settings


class Base(DeclarativeBase):
    """Declarative base of every table the service owns."""

    # Named constraints: migrations and error handling can refer to them by name.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


def create_db_engine(settings: Settings, *, autocommit: bool = False) -> Engine:
    """A pooled psycopg 3 engine, bounded everywhere it could wait, safe across fork.

    An autocommit engine's connections are switched once, when they open: no BEGIN, no
    ROLLBACK and nothing to reset when they return to the pool."""
    assert settings.database_url is not None, "DATABASE_URL is resolved before the engine"
    transactions: dict[str, Any] = (
        {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None} if autocommit else {}
    )
    engine = create_engine(
        settings.database_url.get_secret_value(),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=settings.db_pool_recycle,
        # Parameters can hold personal data; errors and logs show the SQL only.
        hide_parameters=True,
        connect_args={
            "connect_timeout": settings.db_connect_timeout,
            "application_name": settings.service_name,
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
        },
        **transactions,
    )
    if settings.db_pool_pre_ping:
        _ping_connections_after_idle(engine)
    _forget_pool_after_fork(engine)
    return engine


# A connection used this recently is trusted without a ping (HikariCP's "alive bypass
# window" is 500 ms). SQLAlchemy's own pool_pre_ping pings at every checkout: a third
# database round trip for a request that needs two. A connection that fails anyway (the
# server went away within the window) fails its request with a 503, and SQLAlchemy
# invalidates the whole pool, so the next request connects afresh.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_connections_after_idle(engine: Engine) -> None:
    def stamp(_dbapi_connection: Any, record: Any, *_: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) < PING_AFTER_IDLE_SECONDS:
            return
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            # Leave no transaction open: a read session switches the connection to
            # autocommit next, which psycopg refuses inside a transaction.
            dbapi_connection.rollback()
        except psycopg.Error as exc:
            # The pool discards this connection and checks out (or opens) another.
            raise DisconnectionError(type(exc).__name__) from exc

    event.listen(engine, "connect", stamp)
    event.listen(engine, "checkin", stamp)
    event.listen(engine, "checkout", ping_if_idle)


def _forget_pool_after_fork(engine: Engine) -> None:
    # A pooled connection must never be shared by two processes (SQLAlchemy's "Using
    # Connection Pools with Multiprocessing or os.fork()"). If the engine exists before a
    # fork (Gunicorn preload_app, a forking RQ work horse) the child drops the inherited
    # connections without closing them (close=False leaves the parent's sockets intact).
    ref = weakref.ref(engine)

    def forget() -> None:
        inherited = ref()
        if inherited is not None:
            inherited.dispose(close=False)

    os.register_at_fork(after_in_child=forget)
