"""One log level for every process: 3 Gunicorn workers and 2 RQ workers follow a PUT."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from flask import Flask
from redis import Redis

from app.web.services import services
from devtools.processes import ServerProcess

TOKEN = "x" * 40


def _lines(process: ServerProcess) -> list[dict[str, object]]:
    return [json.loads(line) for line in process.output().splitlines() if line.startswith("{")]


def _debug_pids(records: list[dict[str, object]]) -> set[object]:
    return {record["pid"] for record in records if record["level"] == "DEBUG"}


def _switched_pids(records: list[dict[str, object]]) -> set[object]:
    """Processes that logged applying the debug level (each process says so once)."""
    return {
        record["pid"]
        for record in records
        if record["message"] == "log level applied" and record.get("level_name") == "debug"
    }


def _wait_for(check: Callable[[], bool], timeout: float = 60) -> None:
    """Processes start and poll at their own pace on a loaded CI machine: wait, bounded."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_log_level_is_read_from_settings_without_redis_override(
    app: Flask, redis_db: Redis
) -> None:
    assert services(app).log_level.current() == "debug"
