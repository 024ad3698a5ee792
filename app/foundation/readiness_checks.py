"""Startup and readiness state of this process, and the dependency checks behind them."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis import Redis
from sqlalchemy import Engine, text

from app.foundation.deadline import DeadlineExceeded, deadline
from app.foundation.migrations import schema_revisions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    critical: bool
    duration_ms: float
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "failing",
            "critical": self.critical,
            "duration_ms": round(self.duration_ms, 3),
            "error": self.error,
        }


class ReadinessChecks:
    """Answers "has this process started?" and "should it get traffic now?".

    PostgreSQL gates readiness: without it no request can succeed. Redis does not: the
    users API still works without it, and failing every pod's readiness during a Redis
    blip would turn a degraded service into a total outage. Redis is reported, not gated.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        redis: Redis,
        expected_heads: set[str],
        timeout_seconds: float,
        drain_flag: Path | None = None,
    ) -> None:
        self._engine = engine
        self._timeout = timeout_seconds
        self._redis = redis
        self._expected_heads = expected_heads
        self._started = False
        self._drain_flag = drain_flag
        self._shutting_down = False

    @property
    def shutting_down(self) -> bool:
        """True once shutdown began: in this process, or for every worker at once when
        the Gunicorn master creates the drain flag file on SIGTERM (gunicorn.conf.py)."""
        if self._shutting_down:
            return True
        return self._drain_flag is not None and self._drain_flag.exists()

    @shutting_down.setter
    def shutting_down(self, value: bool) -> None:
        self._shutting_down = value

    def started(self) -> bool:
        """True once the schema is at the code's migration head; stays true after that."""
        if not self._started:
            try:
                self._started = schema_revisions(self._engine) == self._expected_heads
            except Exception as exc:
                logger.info("startup check failed", extra={"error": type(exc).__name__})
        return self._started

    def check(self) -> tuple[bool, list[CheckResult]]:
        """Run every dependency check; ready when no critical one fails."""
        results = [
            _timed("database", critical=True, probe=self._ping_database),
            _timed("redis", critical=False, probe=self._redis.ping),
        ]
        ready = not self.shutting_down and all(r.ok for r in results if r.critical)
        return ready, results

    def _ping_database(self) -> object:
        # A frozen server answers nothing, not even statement_timeout: bound it here.
        try:
            with deadline(self._timeout), self._engine.connect() as connection:
                return connection.execute(text("SELECT 1")).scalar_one()
        except DeadlineExceeded:
            raise TimeoutError(f"no answer within {self._timeout} s") from None


def _timed(name: str, *, critical: bool, probe: Any) -> CheckResult:
    started = time.perf_counter()
    try:
        probe()
    except Exception as exc:
        elapsed = (time.perf_counter() - started) * 1000
        logger.warning("readiness check failed", extra={"check": name, "error": type(exc).__name__})
        return CheckResult(name, False, critical, elapsed, type(exc).__name__)
    return CheckResult(name, True, critical, (time.perf_counter() - started) * 1000)
