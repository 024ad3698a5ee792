"""The reliability suite: PostgreSQL and Redis servers it owns (so it can stop them), real
Gunicorn and workers, bounded load on loopback, and a table of what happened."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _pytest.terminal import TerminalReporter

from app.foundation.migrations import upgrade_to_head
from devtools.embedded import EmbeddedPostgres, EmbeddedRedis
from devtools.processes import ServerProcess
from devtools.processes import start_web as start_gunicorn
from tests.support.servers import fresh_database


@dataclass
class Row:
    scenario: str
    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    jobs_enqueued: int = 0
    jobs_done: int = 0
    lost: int = 0


ROWS: list[Row] = []


@pytest.fixture
def report() -> list[Row]:
    return ROWS


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    if not ROWS:
        return
    header = (
        "scenario",
        "requests sent",
        "succeeded",
        "failed",
        "jobs enqueued",
        "jobs done",
        "lost",
    )
    lines = [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"]
    for row in ROWS:
        values = (
            row.scenario,
            row.sent,
            row.succeeded,
            row.failed,
            row.jobs_enqueued,
            row.jobs_done,
            row.lost,
        )
        lines.append(f"| {' | '.join(str(value) for value in values)} |")
    terminalreporter.write_sep("=", "reliability")
    for line in lines:
        terminalreporter.write_line(line)
    output = Path("var/reliability.md")
    output.parent.mkdir(exist_ok=True)
    output.write_text("\n".join(lines) + "\n")


@dataclass
class OwnedServers:
    postgres: EmbeddedPostgres
    redis: EmbeddedRedis
    database_url: str
    redis_url: str


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[OwnedServers]:
    postgres, redis = EmbeddedPostgres(tmp_path / "pg"), EmbeddedRedis(tmp_path / "redis")
    redis.start()
    with fresh_database(postgres.start()) as url:
        upgrade_to_head(url)
        yield OwnedServers(postgres, redis, url, redis.url(1))
        postgres.start()
    postgres.close()
    redis.close()


def start_web(servers: OwnedServers, tmp_path: Path, **env: str) -> tuple[ServerProcess, int]:
    settings = {"WEB_CONCURRENCY": "3", "LOG_LEVEL": "warning", **env}
    return start_gunicorn(servers.database_url, servers.redis_url, tmp_path / "web.log", **settings)
