"""Request metrics have bounded labels: invented methods and unknown paths cannot add
series (read from this process's registry; tests/system/test_metrics.py reads Gunicorn's)."""

from __future__ import annotations

from flask.testing import FlaskClient
from prometheus_client import REGISTRY


def _series() -> set[tuple[str, str]]:
    return {
        (sample.labels["method"], sample.labels["route"])
        for metric in REGISTRY.collect()
        if metric.name == "http_requests"
        for sample in metric.samples
        if sample.name == "http_requests_total"
    }


def test_invented_methods_and_paths_are_folded_into_bounded_labels(client: FlaskClient) -> None:
    for n in range(50):
        client.open(f"/api/v1/users/nope{n}", method=f"INVENTED{n}")
        client.get(f"/no/such/path/{n}")

    series = _series()

    assert not any(method.startswith("INVENTED") for method, _ in series)
    assert ("OTHER", "<unmatched>") in series
    assert not any(route.startswith(("/no/", "/api/v1/users/nope")) for _, route in series)
