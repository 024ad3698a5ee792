"""Request metrics (prometheus-flask-exporter) have bounded labels: invented methods and
unknown paths add no series, probes are not counted (read from the app's registry here;
tests/system/test_metrics.py reads what Gunicorn's master serves)."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from app.web.services import services


def _series(app: Flask) -> dict[tuple[str, str, str], float]:
    return {
        (sample.labels["method"], sample.labels["route"], sample.labels["status"]): sample.value
        for metric in services(app).metrics_registry.collect()
        for sample in metric.samples
        if sample.name == "http_request_duration_seconds_count"
    }


def test_each_request_is_counted_by_method_route_and_status_but_probes_are_not(
    app: Flask, client: FlaskClient
) -> None:
    before = _series(app)
    client.get("/api/v1/users?limit=1")
    client.get("/healthz")
    client.get("/readyz")

    after = _series(app)

    key = ("GET", "/api/v1/users", "200")
    assert after[key] == before.get(key, 0) + 1
    assert not any(route in ("/healthz", "/readyz") for _, route, _ in after)


def test_invented_methods_and_paths_are_folded_into_bounded_labels(
    app: Flask, client: FlaskClient
) -> None:
    for n in range(50):
        assert client.open(f"/api/v1/users/nope{n}", method=f"INVENTED{n}").status_code == 404
        assert client.open("/api/v1/users", method=f"INVENTED{n}").status_code == 405
        client.get(f"/no/such/path/{n}")

    series = _series(app)

    assert not any(method.startswith("INVENTED") for method, _, _ in series)
    assert ("OTHER", "<unmatched>", "405") in series  # a 405 matched no rule
    assert ("OTHER", "<unmatched>", "404") in series
    assert not any(route.startswith(("/no/", "/api/v1/users/nope")) for _, route, _ in series)
