"""One log level for every process: 3 Gunicorn workers and 2 RQ workers follow a PUT."""

from __future__ import annotations

from flask import Flask
from redis import Redis

from app.web.services import services

TOKEN = "x" * 40


def test_log_level_is_read_from_settings_without_redis_override(
    app: Flask, redis_db: Redis
) -> None:
    assert services(app).log_level.current() == "debug"
