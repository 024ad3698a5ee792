"""The web process's database access: one session per request, on the right pool.

GET and HEAD only read, and READ COMMITTED gives each statement its own snapshot
anyway, so their sessions go through the read engine, whose connections are in
autocommit. Choosing by HTTP method is the web layer's business: the engines themselves
(app/foundation/database.py) know nothing of requests.
"""

from __future__ import annotations

from typing import cast

from flask import Flask, g, has_request_context, request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

SAFE_METHODS = frozenset({"GET", "HEAD"})


class Database:
    """Flask extension: the process's two engines and one session per request.

    A read costs one database round trip instead of three (BEGIN, the query, ROLLBACK).
    The read engine is a pool of its own because switching a pooled connection in and out
    of autocommit at every checkout costs more CPU than the round trips it saves
    (make bench)."""

    def __init__(self, engine: Engine, read_engine: Engine) -> None:
        self.engine = engine
        self.read_engine = read_engine
        self.sessionmaker = sessionmaker(engine, expire_on_commit=False)
        self.read_sessionmaker = sessionmaker(read_engine, expire_on_commit=False)

    def init_app(self, app: Flask) -> None:
        app.teardown_appcontext(self._close_request_session)

    @property
    def session(self) -> Session:
        """The current request's session, opened on first use."""
        if "db_session" not in g:
            reading = has_request_context() and request.method in SAFE_METHODS
            g.db_session = (self.read_sessionmaker if reading else self.sessionmaker)()
        return cast(Session, g.db_session)

    def dispose(self) -> None:
        """Close every pooled connection of both engines."""
        self.engine.dispose()
        self.read_engine.dispose()

    def _close_request_session(self, _error: BaseException | None) -> None:
        # close() rolls back whatever the request did not commit and returns the connection.
        session = g.pop("db_session", None)
        if session is not None:
            session.close()
