"""Gunicorn settings and server hooks: the web process's lifecycle is wired here.

Every value comes from the service's validated Settings, so an invalid environment
stops the master before it binds (exit 2, one line per problem).

preload_app is off by default: each worker builds its own app, engine, Redis client and
tracer after fork, so nothing with a socket or a thread ever crosses a fork. The master
imports the app's modules, though (not the app): a worker forked with them loaded boots
in milliseconds instead of ~0.9 s of CPU, which max_requests recycling would otherwise
pay over and over. The engine is fork-safe either way (app/foundation/database.py drops
inherited pools), so GUNICORN_PRELOAD_APP=true only adds sharing the app object itself.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from app.foundation.config import load_settings_or_exit
from app.foundation.logs import logging_config, skip_unused_record_fields

settings = load_settings_or_exit()
logger = logging.getLogger("app.lifecycle")

# Multiprocess metrics: every process must see this variable before it imports
# prometheus_client (workers inherit it). Containers mount a writable directory here;
# elsewhere each Gunicorn instance gets a private one.
_made_here: list[Path] = []


def _own_temporary_dir(prefix: str) -> Path:
    """A directory of this server's, removed when the master exits."""
    made = Path(tempfile.mkdtemp(prefix=prefix))
    _made_here.append(made)
    return made


if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_own_temporary_dir("users-api-metrics-"))
METRICS_DIR = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
from app.foundation.tracing import create_tracer_provider  # noqa: E402
from app.master.drain import Drain  # noqa: E402
from app.master.metrics_exposition import MetricFiles, reset_directory, serve_metrics  # noqa: E402
from app.web.services import services  # noqa: E402

METRICS_DIR.mkdir(parents=True, exist_ok=True)
metric_files = MetricFiles.of(METRICS_DIR)

# The app's modules, not the app (see above): nothing here opens a connection or starts a
# thread. Metric objects created at import get files of the master's pid, emptied by
# on_starting; each worker's values switch to files of its own pid on first use.
import app.wsgi  # noqa: E402, F401

# Readiness shared by every worker: the master gets SIGTERM, the workers must all answer
# /readyz 503 at once. The master creates this file; each worker's /readyz checks it.
if "DRAIN_FLAG_FILE" not in os.environ:
    os.environ["DRAIN_FLAG_FILE"] = str(_own_temporary_dir("users-api-run-") / "draining")
drain = Drain(Path(os.environ["DRAIN_FLAG_FILE"]), seconds=settings.shutdown_drain_seconds)

# The issuer's last good key set, shared by this server's workers: one that starts or
# recycles while the issuer is down begins with it (app/foundation/access_tokens.py).
if "AUTH_JWKS_CACHE_FILE" not in os.environ:
    os.environ["AUTH_JWKS_CACHE_FILE"] = str(_own_temporary_dir("users-api-keys-") / "jwks.json")

wsgi_app = "app.wsgi:build()"
bind = [f"{settings.host}:{settings.port}"]
workers = settings.web_concurrency
worker_class = "sync"
preload_app = settings.gunicorn_preload_app

# A worker silent for `timeout` seconds is killed and replaced: no request holds a
# worker forever. On SIGTERM, in-flight requests get `graceful_timeout` to finish.
timeout = settings.gunicorn_timeout
graceful_timeout = settings.gunicorn_graceful_timeout
keepalive = settings.gunicorn_keepalive
# Recycle workers now and then (with jitter, so they do not all restart at once) to
# bound the damage of a slow leak in any library. Rarely: under load each recycle stalls
# the requests queued behind it for up to half a second, even in a bare Gunicorn
# (make bench measured 1000 requests per worker costing a quarter of the throughput).
max_requests = settings.gunicorn_max_requests
max_requests_jitter = settings.gunicorn_max_requests_jitter

# Only the reverse proxy's X-Forwarded-Proto sets the scheme; the app applies the same list
# to X-Forwarded-For (app/web/forwarded.py), so logs name the client, not the proxy.
forwarded_allow_ips = settings.forwarded_allow_ips

# deploy/nginx/default.conf.template holds the same limits: change them together.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

logconfig_dict = logging_config(settings.log_level)
skip_unused_record_fields()
# The heartbeat file lives in memory, not on a (possibly read-only) container disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
# Gunicorn 25+ opens ~/.gunicorn/gunicorn.ctl by default: one shared path for every
# instance on the host, and a write to the home directory. We drive it with signals.
control_socket_disable = True
proc_name = settings.service_name


def on_starting(server: Any) -> None:
    reset_directory(METRICS_DIR)
    drain.reset()


def when_ready(server: Any) -> None:
    drain.install(server)
    assert settings.database_url is not None
    if settings.metrics_enabled:
        serve_metrics(
            files=metric_files,
            arbiter=server,
            database_url=settings.database_url.get_secret_value(),
            host=settings.host,
            port=settings.metrics_port,
        )
    logger.info(
        "gunicorn ready",
        extra={"bind": bind, "workers": workers, "version": settings.app_version},
    )


def child_exit(server: Any, worker: Any) -> None:
    # In the master, for every worker that exits (recycled, crashed, killed, stopped).
    metric_files.retire(worker.pid)


def post_fork(server: Any, worker: Any) -> None:
    # In the new worker: the tracer's export thread and connections must be its own.
    worker.tracer_provider = create_tracer_provider(settings, role="web")


def worker_abort(worker: Any) -> None:
    # In the worker, on SIGABRT from the master: the request ran past GUNICORN_TIMEOUT.
    # The request context is still set, so the line names the request that hung.
    logger.error("request exceeded GUNICORN_TIMEOUT; worker aborted", extra={"timeout": timeout})


def worker_exit(server: Any, worker: Any) -> None:
    provider = getattr(worker, "tracer_provider", None)
    if provider is not None:
        provider.shutdown()  # flush the spans still batched
    # Close pooled connections cleanly so PostgreSQL sees a goodbye, not a dropped socket.
    app = getattr(worker, "wsgi", None)
    if app is not None:
        services(app).close()


def on_exit(server: Any) -> None:
    for directory in _made_here:
        shutil.rmtree(directory, ignore_errors=True)
    logger.info("gunicorn stopped")
