"""`make run`: the whole stack on one machine with nothing installed but Python.

Uses DATABASE_URL / REDIS_URL when set; otherwise starts embedded PostgreSQL and Redis
(together) with their data under ./var/. Migrates only when the schema is behind the
code, starts a development inbox unless SMTP_URL is set, writes the URLs to
var/stack.env for the operator commands, then runs Gunicorn and one RQ worker, prints a
banner once /readyz answers, and stops everything on Ctrl-C, SIGTERM or SIGHUP (or when
the `make` that started it is stopped: devtools/parent_watch.py).
"""

from __future__ import annotations

import dataclasses
import http.client
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any

from app.foundation.config import STACK_ENV_FILE, ConfigError, Settings
from app.foundation.secret_urls import mask_url
from devtools import banner
from devtools.embedded import EmbeddedPostgres, EmbeddedRedis
from devtools.inbox import Inbox
from devtools.issuer import AUDIENCE, ISSUER_KEY_FILE, DevIssuer
from devtools.parent_watch import ParentWatch
from devtools.processes import kill_tree

logger = logging.getLogger("devtools.stack")
# Settings read var/stack.env (STACK_ENV_FILE): the file of the default --var-dir.
STACK_FILE_NAME = Path(STACK_ENV_FILE).name

# Development defaults, each applied only when neither the environment nor .env sets it.
# A laptop is not a production node: Ctrl-C should not wait out a load balancer's drain
# or a request's 25 s of grace, two web workers serve one developer (and start and stop
# in a fraction of the time of the default, two per core plus one), and the worker
# checks for a stop request every second instead of every two.
DEVELOPMENT_DEFAULTS: dict[str, Any] = {
    "shutdown_drain_seconds": 0.0,
    "gunicorn_graceful_timeout": 2,
    "web_concurrency": 2,
    "outbox_relay_interval": 1,
    # Loopback: a laptop on café Wi-Fi must not serve its dev API and admin endpoints to
    # the room (production's default stays every interface).
    "host": "127.0.0.1",
}


def development_settings(settings: Settings) -> Settings:
    """`settings` with the development defaults where nothing else chose a value."""
    chosen = settings.model_fields_set
    return settings.model_copy(
        update={name: value for name, value in DEVELOPMENT_DEFAULTS.items() if name not in chosen}
    )


def _start_servers(settings: Settings, var_dir: Path) -> tuple[dict[str, str], list[Any]]:
    """Embedded PostgreSQL and Redis where no URL is given, started side by side: each
    mostly waits on its server process."""
    servers: dict[str, Any] = {}
    if settings.database_url is None:
        servers["DATABASE_URL"] = EmbeddedPostgres(var_dir / "postgres")
    if settings.redis_url is None:
        servers["REDIS_URL"] = EmbeddedRedis(var_dir / "redis")
    with ThreadPoolExecutor(max_workers=2) as pool:
        started = {name: pool.submit(server.start) for name, server in servers.items()}
        urls = {name: future.result() for name, future in started.items()}
    for name, server in servers.items():
        logger.info(f"embedded {_KIND[name]} started", extra={"data_dir": str(server.data_dir)})
    for name, given in (("DATABASE_URL", settings.database_url), ("REDIS_URL", settings.redis_url)):
        if given is not None:
            urls[name] = given.get_secret_value()
    return urls, list(servers.values())


_KIND = {"DATABASE_URL": "PostgreSQL", "REDIS_URL": "Redis"}


def _stop_servers(servers: list[Any]) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        for done in [pool.submit(server.close) for server in servers]:
            done.result()


def migrate_if_behind(database_url: str) -> bool:
    """`alembic upgrade head` unless the schema is already there; True if it ran. Reading
    the revision is one query, where a no-op upgrade costs Alembic's whole environment."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from app.foundation.migrations import head_revisions, schema_revisions, upgrade_to_head

    engine = create_engine(database_url, poolclass=NullPool)
    try:
        if schema_revisions(engine) == head_revisions():
            return False
    finally:
        engine.dispose()
    upgrade_to_head(database_url)
    logger.info("migrations applied")
    return True


def child_environment(settings: Settings, urls: dict[str, str]) -> dict[str, str]:
    """What Gunicorn and the worker run with: our environment, the servers' URLs, and
    the development defaults (`settings` is the result of development_settings)."""
    env = {**os.environ, **urls, "APP_ENV": settings.app_env}
    for name in DEVELOPMENT_DEFAULTS:
        env[name.upper()] = str(getattr(settings, name))
    return env


def run_dev_stack(settings: Settings, var_dir: Path, *, stop_with_parent: bool = False) -> int:
    """Run until a process exits or a signal arrives; returns the exit status."""
    began = time.monotonic()
    if settings.is_production:
        raise ConfigError(["APP_ENV: the development stack refuses APP_ENV=production"])
    settings = development_settings(settings)
    # From here on a signal is recorded, never fatal: the servers started below must be
    # stopped whatever happens.
    supervisor = Supervisor(
        address=(banner.client_host(settings.host), settings.port),
        grace=settings.gunicorn_graceful_timeout,
    ).listen(stop_with_parent=stop_with_parent)
    inbox: Inbox | None = None
    issuer: DevIssuer | None = None
    files: list[Path] = []
    servers: list[Any] = []
    try:
        # The inbox starts while the servers do: both mostly wait.
        with ThreadPoolExecutor(max_workers=1) as pool:
            starting = pool.submit(_start_servers, settings, var_dir)
            if settings.smtp_url is None:
                inbox = Inbox(var_dir / "mail").start()
            urls, servers = starting.result()
        if inbox is not None:
            urls["SMTP_URL"] = inbox.url
        if settings.auth_issuer is None:
            # A local issuer whose key stays under var/: `make token` signs with it.
            issuer = DevIssuer(var_dir / ISSUER_KEY_FILE).start()
            urls |= {"AUTH_ISSUER": issuer.url, "AUTH_AUDIENCE": AUDIENCE}
        path = var_dir / STACK_FILE_NAME
        files.append(write_stack_file(path, app_env=settings.app_env, urls=urls))
        if supervisor.stop_requested:
            return 0
        # Gunicorn and the worker import for seconds before they touch the database:
        # migrate meanwhile. /startupz and /readyz answer 503 until the schema is at the
        # code's head, as in production while the migration Job runs.
        supervisor.start(child_environment(settings, urls))
        migrate_if_behind(urls["DATABASE_URL"])
        facts = banner.StackFacts(
            settings=settings,
            urls=urls,
            inbox=inbox.directory if inbox else None,
            smtp_url=urls.get("SMTP_URL"),
            started_seconds=0.0,
        )
        return supervisor.supervise(on_ready=lambda: files.append(_announce(facts, began, var_dir)))
    finally:
        supervisor.stop()
        if inbox is not None:
            inbox.stop()
        if issuer is not None:
            issuer.stop()
        for path in files:
            path.unlink(missing_ok=True)
        _stop_servers(servers)
        logger.info("stack stopped", extra={"ran_seconds": round(time.monotonic() - began, 2)})


def _announce(facts: banner.StackFacts, began: float, var_dir: Path) -> Path:
    ready = dataclasses.replace(facts, started_seconds=time.monotonic() - began)
    text = banner.render(ready)
    print("\n" + text, file=sys.stderr, flush=True)
    seconds = round(ready.started_seconds, 2)
    logger.info("stack ready", extra={"seconds": seconds, "api": ready.api_url})
    return banner.write(var_dir / banner.BANNER_FILE_NAME, text)


class Supervisor:
    """Gunicorn and the worker, each in a session of its own (a terminal's Ctrl-C reaches
    only us, and we stop them gracefully); the first signal stops them with SIGTERM,
    a second one kills them."""

    def __init__(self, *, address: tuple[str, int], grace: float) -> None:
        self._address = address
        self._grace = grace
        self._signals: list[int] = []
        self._stops: list[str] = []  # appended to by the parent watch thread
        self._children: list[subprocess.Popen[bytes]] = []
        self._watch: ParentWatch | None = None

    @property
    def stop_requested(self) -> bool:
        return bool(self._signals or self._stops)

    def listen(self, *, stop_with_parent: bool) -> Supervisor:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        if stop_with_parent:
            # Not a signal of ours: make may also pass its SIGTERM on, and that pair must
            # count as one stop request, not as the second one that kills.
            self._watch = ParentWatch(lambda: self._stops.append("parent")).start()
        return self

    def start(self, env: dict[str, str]) -> None:
        commands = [
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
            [sys.executable, "-m", "worker"],
        ]
        self._children = [
            subprocess.Popen(cmd, env=env, start_new_session=True) for cmd in commands
        ]

    def supervise(self, on_ready: Callable[[], None]) -> int:
        """Until a signal or a child's exit; on_ready once /readyz answers 200."""
        announced = False
        while not self.stop_requested and all(child.poll() is None for child in self._children):
            if not announced and self._ready():
                on_ready()
                announced = True
            time.sleep(0.1)
        return self.stop()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals.append(signum)
        if len(self._signals) > 1:
            # A second Ctrl-C: the user does not want to wait for anything.
            for child in self._children:
                kill_tree(child.pid)

    def _ready(self) -> bool:
        connection = http.client.HTTPConnection(*self._address, timeout=1)
        try:
            connection.request("GET", "/readyz")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def stop(self) -> int:
        """SIGTERM to each child still running, bounded wait, then SIGKILL; the status."""
        if self._watch is not None:
            self._watch.stop()
        for child in self._children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        # Gunicorn's graceful timeout bounds the web side; a job running when the stop
        # came gets the same, then everything still there is killed.
        deadline = time.monotonic() + self._grace + 3
        for child in self._children:
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("did not stop in time; killed", extra={"pid": child.pid})
                kill_tree(child.pid)
                child.wait()
        return max((abs(child.returncode) for child in self._children), default=0)


def write_stack_file(path: Path, *, app_env: str, urls: dict[str, str]) -> Path:
    """Where the running stack is, for the operator commands (app/foundation/config.py
    reads this file after .env). The embedded servers and the inbox have no passwords;
    URLs given through the environment are not written, so no secret lands on disk (an
    empty variable counts as unset, as it does for Settings)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"APP_ENV={app_env}"]
    lines += [f"{name}={url}" for name, url in urls.items() if not os.environ.get(name)]
    path.write_text("\n".join(lines) + "\n")
    logger.info("stack URLs written", extra={"file": str(path), **_masked(urls)})
    return path


def _masked(urls: dict[str, str]) -> dict[str, str]:
    return {name.lower(): mask_url(url) for name, url in urls.items()}
