"""Prometheus metrics recorded inside a web worker.

Gunicorn runs several worker processes, so prometheus_client runs in multiprocess mode
(PROMETHEUS_MULTIPROC_DIR, set by gunicorn.conf.py before anything imports it): each
worker writes its values to files that the master merges at scrape time
(app/master/metrics_exposition.py). Request metrics are labelled by the URL rule
(`/api/v1/users/<uuid:user_id>`), never the raw path, so cardinality is bounded by the
number of routes. They are three metric objects updated in one pair of request hooks:
prometheus-flask-exporter's default counter carries no route label, and one set of
hooks is cheaper than its generic per-metric machinery.
"""

from __future__ import annotations

import functools
import time

from flask import Flask, Response, g, request
from prometheus_client import Counter, Gauge, Histogram

# The seed's buckets, in seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
UNMATCHED = "<unmatched>"
# Gunicorn accepts any token as a method, so a client could mint a label value per
# request: unknown methods are counted as OTHER (OpenTelemetry's HTTP conventions).
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
OTHER_METHOD = "OTHER"
# Probes are polled constantly and say nothing about the traffic; they would dominate.
UNMEASURED_ROUTES = frozenset({"/healthz", "/readyz", "/startupz"})

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests served.", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to serve an HTTP request.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge(
    "http_requests_in_flight", "Requests being served now.", multiprocess_mode="livesum"
)
APP_INFO = Gauge(
    "app_info",
    "Version and git revision of the running code.",
    ["version", "revision"],
    multiprocess_mode="max",
)


def _route() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED


def _start() -> None:
    g.metrics_started = time.perf_counter()
    HTTP_IN_FLIGHT.inc()


@functools.cache
def _request_series(method: str, route: str, status: int) -> tuple[Counter, Histogram]:
    # labels() validates and looks up its arguments under a lock on every call; the
    # combinations are few (routes, methods and statuses are bounded), so each is resolved once.
    return HTTP_REQUESTS.labels(method, route, str(status)), HTTP_DURATION.labels(method, route)


def _record(response: Response) -> Response:
    started = g.pop("metrics_started", None)
    if started is None:
        return response
    HTTP_IN_FLIGHT.dec()
    route = _route()
    if route not in UNMEASURED_ROUTES:
        method = request.method if request.method in KNOWN_METHODS else OTHER_METHOD
        requests, duration = _request_series(method, route, response.status_code)
        requests.inc()
        duration.observe(time.perf_counter() - started)
    return response


def init_http_metrics(app: Flask, *, version: str, revision: str) -> None:
    APP_INFO.labels(version, revision).set(1)
    app.before_request(_start)
    app.after_request(_record)
