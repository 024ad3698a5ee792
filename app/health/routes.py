"""/healthz (alive), /readyz (send me traffic), /startupz (initialised)."""

from __future__ import annotations

from typing import cast

from flask import Blueprint, Response, current_app

from app.health.schemas import Alive, Check, Readiness, Started
from app.jsonio import json_response
from app.readiness import Readiness as ReadinessChecks

bp = Blueprint("health", __name__)


def _readiness() -> ReadinessChecks:
    return cast(ReadinessChecks, current_app.extensions["readiness"])


@bp.get("/healthz")
def healthz() -> Response:
    # Liveness checks nothing but the process itself: a database outage must not make
    # Kubernetes restart every pod.
    return json_response(Alive(status="ok"))


@bp.get("/readyz")
def readyz() -> Response:
    readiness = _readiness()
    ready, results = readiness.check()
    if readiness.shutting_down:
        status = "shutting_down"
    elif not ready:
        status = "unready"
    else:
        status = "ready" if all(r.ok for r in results) else "degraded"
    checks = {r.name: Check.model_validate(r.as_dict()) for r in results}
    return json_response(Readiness(status=status, checks=checks), 200 if ready else 503)


@bp.get("/startupz")
def startupz() -> Response:
    if _readiness().started():
        return json_response(Started(status="started"))
    return json_response(Started(status="starting"), 503)
