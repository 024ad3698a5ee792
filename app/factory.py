"""create_app: the one place the web application is wired together."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from app.admin.routes import bp as admin_bp
from app.config import Settings
from app.db import Database, create_db_engine
from app.errors import register_error_handlers
from app.exports.routes import bp as exports_bp
from app.health.routes import bp as health_bp
from app.jobqueue import JobQueue
from app.log_level import LogLevelSync, log_level_key
from app.metrics import init_http_metrics, instrument_pool
from app.migrations import head_revisions
from app.openapi.routes import bp as openapi_bp
from app.outbox import Outbox
from app.readiness import Readiness
from app.redis_client import create_probe_redis, create_redis
from app.request_log import init_request_logging
from app.security_headers import init_security_headers
from app.tracing import instrument
from app.users.routes import bp as users_bp


def create_app(settings: Settings) -> Flask:
    """Build the Flask app and the process-wide clients it owns (engine, Redis)."""
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_content_length,
        # Flask's debugger is never on: there is no setting that enables it.
        DEBUG=False,
        PROPAGATE_EXCEPTIONS=False,
    )
    app.extensions["settings"] = settings

    engine = create_db_engine(settings)
    read_engine = create_db_engine(settings, autocommit=True)
    if settings.metrics_enabled:
        instrument_pool(engine, pool="write")
        instrument_pool(read_engine, pool="read")
    Database(engine, read_engine).init_app(app)
    redis = create_redis(settings)
    app.extensions["redis"] = redis
    jobs = JobQueue(redis, settings)
    app.extensions["jobs"] = jobs
    app.extensions["outbox"] = Outbox(jobs)
    log_level = LogLevelSync(
        create_probe_redis(settings), key=log_level_key(settings), default=settings.log_level
    )
    app.extensions["log_level"] = log_level
    # Started by the first request of each worker process: after the fork, never before.
    app.before_request(log_level.ensure_running)
    app.extensions["readiness"] = Readiness(
        engine=engine,
        redis=create_probe_redis(settings),
        expected_heads=head_revisions(),
        drain_flag=Path(settings.drain_flag_file) if settings.drain_flag_file else None,
    )

    init_request_logging(app)
    init_security_headers(app)
    if settings.metrics_enabled:
        init_http_metrics(app, version=settings.app_version, revision=settings.git_revision)
    register_error_handlers(app)
    app.register_blueprint(health_bp)
    app.register_blueprint(users_bp)
    app.register_blueprint(exports_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(openapi_bp)
    instrument(settings, app=app)
    return app
