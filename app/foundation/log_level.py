"""One log level for every process of the service, changed at run time.

A level set in one process changes that process only (a Gunicorn worker out of many:
gunicorn #1665), so the level lives in Redis. Every web worker and every RQ worker runs
a small daemon thread that reads it every second and applies it; a process starting
later applies it before it serves anything. Without Redis, processes keep their level.
"""

from __future__ import annotations

import logging
import os
import threading

from opentelemetry.instrumentation.utils import suppress_instrumentation
from redis import Redis
from redis.exceptions import RedisError

from app.foundation.config import Settings

LEVELS = ("debug", "info", "warning", "error", "critical")
logger = logging.getLogger(__name__)


def log_level_key(settings: Settings) -> str:
    return f"{settings.service_name}:log-level"


def apply_level(level: str) -> None:
    """Set the level of this process's root logger (and Gunicorn's own, which does not
    propagate)."""
    for name in ("", "gunicorn.error"):
        logging.getLogger(name).setLevel(level.upper())


class LogLevelSync:
    def __init__(self, redis: Redis, *, key: str, default: str, interval: float = 1.0) -> None:
        self._redis = redis
        self._key = key
        self._default = default
        self._interval = interval
        self._applied: str | None = None
        self._owner_pid: int | None = None
        self._lock = threading.Lock()

    def current(self) -> str:
        """The service-wide level: the one stored in Redis, else LOG_LEVEL."""
        stored = self._redis.get(self._key)
        if isinstance(stored, bytes):
            return stored.decode()
        return str(stored) if stored else self._default

    def publish(self, level: str) -> None:
        self._redis.set(self._key, level)
        self._apply(level)

    def ensure_running(self) -> None:
        """Start the poller in this process (once per process, so also after a fork)."""
        if self._owner_pid == os.getpid():
            return
        with self._lock:
            if self._owner_pid == os.getpid():
                return
            self._owner_pid = os.getpid()
            self._sync()
            thread = threading.Thread(target=self._poll, name="log-level-sync", daemon=True)
            thread.start()

    def _poll(self) -> None:
        event = threading.Event()
        # A Redis GET every second is no one's request: it must not start traces.
        with suppress_instrumentation():
            while not event.wait(self._interval):
                self._sync()

    def _sync(self) -> None:
        try:
            level = self.current()
        except RedisError:
            return
        self._apply(level)

    def _apply(self, level: str) -> None:
        if level != self._applied and level in LEVELS:
            changed = level != (self._applied or self._default)
            apply_level(level)
            self._applied = level
            # A change at runtime is logged at the level that survives any setting, so
            # operators see each process switch; a process starting at its configured
            # level is routine (every worker boot) and says so at INFO.
            log = logger.warning if changed else logger.info
            log("log level applied", extra={"level_name": level})
