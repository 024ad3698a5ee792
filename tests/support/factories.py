"""Builders for test data, in one place."""

from __future__ import annotations

import itertools
from typing import Any

from flask.testing import FlaskClient

_numbers = itertools.count(1)


def user_payload(**overrides: Any) -> dict[str, Any]:
    n = next(_numbers)
    return {"email": f"user{n}@example.com", "name": f"User {n}", **overrides}


def create_user(client: FlaskClient, **overrides: Any) -> dict[str, Any]:
    response = client.post("/api/v1/users", json=user_payload(**overrides))
    assert response.status_code == 201, response.json
    body: dict[str, Any] = response.json  # type: ignore[assignment]
    return body
