"""One log level for every process: 3 Gunicorn workers and 2 RQ workers follow a PUT."""

from __future__ import annotations

import logging

import pytest
from flask import Flask
from redis import Redis

from app.foundation.log_level import LogLevelSync, apply_level
from app.web.services import services

TOKEN = "x" * 40


def test_log_level_is_read_from_settings_without_redis_override(
    app: Flask, redis_db: Redis
) -> None:
    assert services(app).log_level.current() == "debug"


def test_log_level_applied_is_info_at_boot_and_a_warning_only_when_it_changes(
    redis_db: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 20: "log level applied" came at WARNING on every worker boot."""
    sync = LogLevelSync(redis_db, key="test:log-level", default="info")
    try:
        with caplog.at_level(logging.DEBUG, logger="app.foundation.log_level"):
            sync.ensure_running()  # boot, at the configured level
            sync.publish("debug")  # a change at runtime
        applied = [
            (r.levelname, r.__dict__["level_name"])
            for r in caplog.records
            if r.msg == "log level applied"
        ]
        assert applied == [("INFO", "info"), ("WARNING", "debug")]
    finally:
        apply_level("debug")
