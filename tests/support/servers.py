"""Real PostgreSQL and Redis for the suite: external when TEST_*_URL is set, else embedded."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from redis import Redis
from redis.connection import parse_url
from sqlalchemy.engine import make_url

from devtools.embedded import EmbeddedPostgres, EmbeddedRedis

# A Redis DB number of our own on a shared server, unless TEST_REDIS_URL names one.
DEFAULT_TEST_REDIS_DB = 13


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server at `server_url`, dropped afterwards."""
    name = f"users_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(server_url), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield (
            make_url(server_url)
            .set(database=name, drivername="postgresql+psycopg")
            .render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(_libpq(server_url), autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextmanager
def postgres_server(tmp: Path) -> Iterator[str]:
    """URL of a PostgreSQL server: TEST_DATABASE_URL's, or an embedded one in `tmp`."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    server = EmbeddedPostgres(tmp / "postgres")
    try:
        yield server.start()
    finally:
        server.close()


@contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    """URL of a Redis database of our own, emptied before and after the session."""
    external = os.environ.get("TEST_REDIS_URL")
    server = None
    if external:
        has_db = "db" in parse_url(external)  # type: ignore[no-untyped-call]
        url = external if has_db else f"{external.rstrip('/')}/{DEFAULT_TEST_REDIS_DB}"
    else:
        server = EmbeddedRedis(tmp / "redis")
        server.start()
        url = server.url(DEFAULT_TEST_REDIS_DB)
    client = Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
        if server is not None:
            server.close()
