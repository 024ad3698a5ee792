"""create_app: the one place the web application is wired together.

It reads as a table of contents: the clients a process owns, the middleware every request
passes through, the error handlers, the features, and tracing around it all.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from prometheus_client import CollectorRegistry

from app.features.blueprints import FEATURE_BLUEPRINTS
from app.foundation.access_tokens import KeySet, TokenVerifier
from app.foundation.config import Settings
from app.foundation.database import create_db_engine
from app.foundation.log_level import LogLevelSync, log_level_key
from app.foundation.migrations import head_revisions
from app.foundation.pool_metrics import instrument_pool
from app.foundation.readiness_checks import ReadinessChecks
from app.foundation.redis_client import create_probe_redis, create_redis
from app.jobs.outbox import Outbox
from app.jobs.queue import JobQueue
from app.web.bearer_auth import init_bearer_auth
from app.web.errors import register_error_handlers
from app.web.forwarded import ForwardedClient
from app.web.http_methods import init_method_folding
from app.web.http_metrics import init_http_metrics
from app.web.rate_limits import init_rate_limits
from app.web.request_deadline import DeadlineFlask
from app.web.request_log import init_request_logging
from app.web.security_headers import init_security_headers
from app.web.services import Services
from app.web.sessions import Database
from app.web.tracing import instrument_app


def create_app(settings: Settings) -> Flask:
    """Build the Flask app and the process-wide clients it owns (engines, Redis)."""
    app = DeadlineFlask(__name__)
    app.request_timeout = settings.request_timeout
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_content_length,
        # Flask's debugger is never on: there is no setting that enables it.
        DEBUG=False,
        PROPAGATE_EXCEPTIONS=False,
    )
    services = build_services(settings)
    services.install(app)
    # Started by the first request of each worker process: after the fork, never before.
    app.before_request(services.log_level.ensure_running)
    init_middleware(app, services)
    register_error_handlers(app)
    for blueprint in FEATURE_BLUEPRINTS:
        app.register_blueprint(blueprint)
    init_access_control(app, services)
    instrument_app(settings, app)
    # Outermost, so tracing, the access log and the admin audit all see the client behind
    # the reverse proxy (FORWARDED_ALLOW_IPS), never the proxy itself.
    app.wsgi_app = ForwardedClient(app.wsgi_app, settings.trusted_proxies)  # type: ignore[method-assign]
    return app


def build_services(settings: Settings) -> Services:
    """The clients of one web process; nothing here connects until first used."""
    engine = create_db_engine(settings)
    read_engine = create_db_engine(settings, autocommit=True)
    if settings.metrics_enabled:
        instrument_pool(engine, pool="write")
        instrument_pool(read_engine, pool="read")
    redis = create_redis(settings)
    jobs = JobQueue(redis, settings)
    database = Database(engine, read_engine)
    outbox = Outbox(jobs)
    outbox.watch(database.sessionmaker)
    return Services(
        settings=settings,
        database=database,
        redis=redis,
        jobs=jobs,
        outbox=outbox,
        log_level=LogLevelSync(
            create_probe_redis(settings), key=log_level_key(settings), default=settings.log_level
        ),
        metrics_registry=CollectorRegistry(),
        tokens=create_token_verifier(settings),
        readiness=ReadinessChecks(
            engine=engine,
            redis=create_probe_redis(settings),
            expected_heads=head_revisions(),
            timeout_seconds=settings.readiness_timeout,
            drain_flag=Path(settings.drain_flag_file) if settings.drain_flag_file else None,
        ),
    )


def init_access_control(app: Flask, services: Services) -> None:
    """Who may call what, and how often: after the request log (a refusal is logged with
    its request id) and the blueprints (the limits wrap their views)."""
    settings = services.settings
    failed_auth = init_rate_limits(app, settings) if settings.rate_limits_enabled else None
    init_bearer_auth(
        app,
        services.tokens,
        break_glass=settings.admin_token,
        on_refused=failed_auth.refuse_if_exceeded if failed_auth else None,
    )


def init_middleware(app: Flask, services: Services) -> None:
    """What every request passes through, whichever feature serves it."""
    settings = services.settings
    init_method_folding(app)
    init_request_logging(app)
    init_security_headers(app)
    if settings.metrics_enabled:
        init_http_metrics(
            app,
            services.metrics_registry,
            version=settings.app_version,
            revision=settings.git_revision,
        )


def create_token_verifier(settings: Settings) -> TokenVerifier | None:
    """One per process: its key cache and verified-token cache live as long as it."""
    if settings.auth_issuer is None or settings.auth_audience is None:
        return None
    keys = KeySet(
        issuer=settings.auth_issuer,
        jwks_url=settings.auth_jwks_url,
        refresh_seconds=settings.auth_jwks_refresh_seconds,
        timeout_seconds=settings.auth_jwks_timeout,
        cache_file=Path(settings.auth_jwks_cache_file) if settings.auth_jwks_cache_file else None,
    )
    return TokenVerifier(
        keys,
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        leeway_seconds=settings.auth_leeway_seconds,
        max_token_bytes=settings.auth_max_token_bytes,
    )
