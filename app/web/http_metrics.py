"""Prometheus request metrics of a web worker, recorded by prometheus-flask-exporter.

Gunicorn runs several worker processes, so prometheus_client runs in multiprocess mode
(PROMETHEUS_MULTIPROC_DIR, set by gunicorn.conf.py before anything imports it): each
worker writes its values to files that the master merges and serves on its own port
(app/master/metrics_exposition.py), so the exporter's own endpoint and HTTP server are
not used. What the exporter lacks stays here: labels no client can multiply (the URL
rule, never the raw path; unknown methods folded into OTHER by app/web/http_methods.py),
the in-flight gauge, and the version info.
"""

from __future__ import annotations

import os

from flask import Flask, Request, Response
from prometheus_client import CollectorRegistry, Gauge
from prometheus_flask_exporter import NO_PREFIX, PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornPrometheusMetrics

# The seed's buckets, in seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
UNMATCHED = "<unmatched>"
# Probes are polled constantly and say nothing about the traffic; they would dominate.
UNMEASURED_PATHS = r"^/(healthz|readyz|startupz)$"

HTTP_IN_FLIGHT = Gauge(
    "http_requests_in_flight", "Requests being served now.", multiprocess_mode="livesum"
)


def route(request: Request) -> str:
    """The label of a request: its URL rule (`/api/v1/users/<uuid:user_id>`), so the
    number of series is bounded by the number of routes. The exporter names the label
    after this function."""
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED


def init_http_metrics(
    app: Flask, registry: CollectorRegistry, *, version: str, revision: str
) -> None:
    """Count and time every request but the probes, into `registry` (one per app: the
    exporter skips an app whose registry already holds its metrics)."""
    options = {
        "registry": registry,
        "defaults_prefix": NO_PREFIX,
        "group_by": route,
        "buckets": LATENCY_BUCKETS,
        "excluded_paths": UNMEASURED_PATHS,
    }
    metrics = (
        GunicornPrometheusMetrics(app, **options)
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ
        else PrometheusMetrics(app, path=None, **options)
    )
    metrics.info(
        "app_info",
        "Version and git revision of the running code.",
        version=version,
        revision=revision,
    )
    app.before_request(HTTP_IN_FLIGHT.inc)
    app.after_request(_leave)


def _leave(response: Response) -> Response:
    HTTP_IN_FLIGHT.dec()
    return response
