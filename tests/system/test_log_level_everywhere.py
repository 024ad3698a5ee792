"""One log level for every process: 3 Gunicorn workers and 2 RQ workers follow a PUT."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from redis import Redis

from app.factory import create_app
from app.web.services import services
from app.web.sessions import Database
from devtools.processes import ServerProcess, http_call, start_web, worker
from tests.conftest import make_settings, worker_env

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


def test_put_log_level_reaches_every_web_and_worker_process(
    database_url: str, redis_url: str, db: Database, redis_db: Redis, tmp_path: Path
) -> None:
    web, port = start_web(
        database_url, redis_url, tmp_path / "web.log", WEB_CONCURRENCY="3", ADMIN_TOKEN=TOKEN
    )
    settings = make_settings(database_url=database_url, redis_url=redis_url)
    env = worker_env(settings, tmp_path, LOG_LEVEL="info")
    workers = [
        worker({**env, "WORKER_HEARTBEAT_FILE": str(tmp_path / f"hb{n}")}, tmp_path / f"w{n}.log")
        for n in range(2)
    ]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        for n in range(2):
            _wait_for((tmp_path / f"hb{n}").exists)
        for _ in range(30):  # every web worker has served a request at level info
            http_call("GET", port, "/api/v1/users")
        assert http_call("GET", port, "/admin/log-level", headers=auth)[2] == {"level": "info"}
        bad = http_call("PUT", port, "/admin/log-level", {"level": "loud"}, headers=auth)
        assert bad[0] == 400
        assert bad[1]["Content-Type"] == "application/problem+json"
        assert not _debug_pids(_lines(web))

        seen = [len(_lines(process)) for process in (web, *workers)]
        assert (
            http_call("PUT", port, "/admin/log-level", {"level": "debug"}, headers=auth)[0] == 200
        )
        assert http_call("GET", port, "/admin/log-level", headers=auth)[2] == {"level": "debug"}

        def after() -> list[list[dict[str, object]]]:
            processes = (web, *workers)
            return [_lines(process)[start:] for process, start in zip(processes, seen, strict=True)]

        def every_web_worker_switched() -> bool:
            http_call("GET", port, "/api/v1/users")
            return len(_switched_pids(after()[0])) == 3

        _wait_for(every_web_worker_switched)
        _wait_for(lambda: all(len(_switched_pids(records)) == 1 for records in after()[1:]))
        for _ in range(30):
            http_call("GET", port, "/api/v1/users")
        assert _debug_pids(after()[0]), "every Gunicorn worker writes debug lines"
        _wait_for(lambda: all(_debug_pids(records) for records in after()[1:]))

        # A worker started later begins at the current level.
        late = create_app(make_settings(database_url=database_url, redis_url=redis_url))
        assert services(late).log_level.current() == "debug"
        services(late).close()
    finally:
        web.kill()
        for process in workers:
            process.kill()
