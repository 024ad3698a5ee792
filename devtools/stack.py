"""`make run`: the whole stack on one machine with nothing installed but Python.

Uses DATABASE_URL / REDIS_URL when set; otherwise starts embedded PostgreSQL and Redis
with their data under ./var/. Applies migrations once, writes the URLs to var/stack.env
for the operator commands, then runs Gunicorn and one RQ worker until Ctrl-C or SIGTERM,
which it passes on as a graceful SIGTERM to each.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from app.foundation.config import STACK_ENV_FILE, ConfigError, Settings, mask_url
from app.foundation.migrations import upgrade_to_head
from devtools.embedded import EmbeddedPostgres, EmbeddedRedis

logger = logging.getLogger("devtools.stack")
# Settings read var/stack.env (STACK_ENV_FILE): the file of the default --var-dir.
STACK_FILE_NAME = Path(STACK_ENV_FILE).name


def _service_urls(settings: Settings, var_dir: Path) -> tuple[dict[str, str], list[object]]:
    urls: dict[str, str] = {}
    servers: list[object] = []
    if settings.database_url is None:
        postgres = EmbeddedPostgres(var_dir / "postgres")
        urls["DATABASE_URL"] = postgres.start()
        servers.append(postgres)
        logger.info("embedded PostgreSQL started", extra={"data_dir": str(postgres.data_dir)})
    else:
        urls["DATABASE_URL"] = settings.database_url.get_secret_value()
    if settings.redis_url is None:
        redis = EmbeddedRedis(var_dir / "redis")
        urls["REDIS_URL"] = redis.start()
        servers.append(redis)
        logger.info("embedded Redis started", extra={"data_dir": str(redis.data_dir)})
    else:
        urls["REDIS_URL"] = settings.redis_url.get_secret_value()
    return urls, servers


def run_dev_stack(settings: Settings, var_dir: Path) -> int:
    """Run until a process exits or a signal arrives; returns the exit status."""
    if settings.is_production:
        raise ConfigError(["APP_ENV: the development stack refuses APP_ENV=production"])
    urls, servers = _service_urls(settings, var_dir)
    upgrade_to_head(urls["DATABASE_URL"])
    # Ctrl-C should not wait out a load balancer's drain delay on a laptop.
    env = {"SHUTDOWN_DRAIN_SECONDS": "0", **os.environ, **urls, "APP_ENV": settings.app_env}
    # A laptop on café Wi-Fi must not serve its dev API and admin endpoints to the room:
    # loopback unless HOST says otherwise (production's default stays every interface).
    env["HOST"] = env.get("HOST") or "127.0.0.1"
    stack_file = write_stack_file(var_dir / STACK_FILE_NAME, app_env=settings.app_env, urls=urls)
    commands = [
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
        [sys.executable, "-m", "worker"],
    ]
    # Own sessions: a terminal's Ctrl-C reaches only us, and we stop the children gracefully.
    children = [subprocess.Popen(cmd, env=env, start_new_session=True) for cmd in commands]

    def stop(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while all(child.poll() is None for child in children):
        time.sleep(0.2)
    stop(signal.SIGTERM, None)
    status = max(child.wait() for child in children)
    stack_file.unlink(missing_ok=True)
    for server in servers:
        server.close()  # type: ignore[attr-defined]
    return status


def write_stack_file(path: Path, *, app_env: str, urls: dict[str, str]) -> Path:
    """Where the running stack is, for the operator commands (app/foundation/config.py
    reads this file after .env). The embedded servers have no passwords; URLs given
    through the environment are not written, so no secret lands on disk (an empty
    variable counts as unset, as it does for Settings)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"APP_ENV={app_env}"]
    lines += [f"{name}={url}" for name, url in urls.items() if not os.environ.get(name)]
    path.write_text("\n".join(lines) + "\n")
    logger.info("stack URLs written", extra={"file": str(path), **_masked(urls)})
    return path


def _masked(urls: dict[str, str]) -> dict[str, str]:
    return {name.lower(): mask_url(url) for name, url in urls.items()}
