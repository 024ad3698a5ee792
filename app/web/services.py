"""What a request may use, typed: the process-wide clients create_app built.

Views and middleware reach them through these accessors instead of string keys into
`app.extensions` and casts, so a type checker follows every use back to its builder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from flask import Flask, current_app
from prometheus_client import CollectorRegistry
from redis import Redis
from sqlalchemy.orm import Session

from app.foundation.access_tokens import TokenVerifier
from app.foundation.config import Settings
from app.foundation.log_level import LogLevelSync
from app.foundation.readiness_checks import ReadinessChecks
from app.jobs.outbox import Outbox
from app.jobs.queue import JobQueue
from app.web.sessions import Database

_KEY = "services"


@dataclass(frozen=True)
class Services:
    """One web process's clients, built once by create_app and closed by `close`."""

    settings: Settings
    database: Database
    redis: Redis
    jobs: JobQueue
    outbox: Outbox
    log_level: LogLevelSync
    readiness: ReadinessChecks
    # None when no issuer is configured (outside production): every /api call is refused.
    tokens: TokenVerifier | None
    # The request metrics of this app (app/web/http_metrics.py); under Gunicorn the
    # master serves every worker's values from their files instead.
    metrics_registry: CollectorRegistry

    def install(self, app: Flask) -> None:
        app.extensions[_KEY] = self
        self.database.init_app(app)

    def close(self) -> None:
        """Close pooled connections, so PostgreSQL and Redis see a goodbye."""
        self.database.dispose()
        self.redis.close()


def services(app: Flask | None = None) -> Services:
    """The clients of `app`, or of the app serving the current request."""
    return cast(Services, (app or current_app).extensions[_KEY])


def settings() -> Settings:
    return services().settings


def request_session() -> Session:
    """The session of the request being served, on the pool its method calls for."""
    return services().database.session
