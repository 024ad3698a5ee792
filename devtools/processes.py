"""Real processes for tests: free ports, a tiny HTTP client, and a server we own."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The bearer token `http_call` sends unless told otherwise (`make token` prints one).
TOKEN_VARIABLE = "USERS_SERVICE_TOKEN"  # noqa: S105 - a variable name, not a token


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_call(
    method: str,
    port: int,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
    token: str | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request to 127.0.0.1:port; returns status, headers and the decoded JSON body.
    It carries `token`, else $USERS_SERVICE_TOKEN, as a bearer token; "" sends none."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    payload = json.dumps(body) if body is not None else None
    all_headers = {"Content-Type": "application/json"} if payload else {}
    token = os.environ.get(TOKEN_VARIABLE, "") if token is None else token
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    all_headers.update(headers or {})
    try:
        connection.request(method, path, body=payload, headers=all_headers)
        response = connection.getresponse()
        raw = response.read()
        decoded: Any = raw.decode(errors="replace")
        if raw and "json" in (response.getheader("Content-Type") or ""):
            decoded = json.loads(raw)
        return response.status, dict(response.getheaders()), decoded or None
    finally:
        connection.close()


class ServerProcess:
    """A child process whose stdout and stderr go to a file the test can read."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            args,
            env={**os.environ, **env},
            cwd=PROJECT_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_until_http(self, port: int, path: str, status: int = 200, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"exited {self.process.returncode}:\n{self.output()}")
            try:
                if http_call("GET", port, path, timeout=2)[0] == status:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{path} never answered {status}:\n{self.output()}")

    def terminate(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the process and everything it started (workers, a supervisor's children)."""
        if self.process.poll() is None:
            kill_tree(self.process.pid)
            self.process.wait()
        self._log.close()

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")


def dev_stack_env(heartbeat_file: Path, **extra: str) -> tuple[dict[str, str], int]:
    """The environment of a development stack of its own (embedded servers, free ports,
    no URLs inherited from the caller); returns it and the API's port."""
    port = free_port()
    env = {
        **os.environ,
        "APP_ENV": "development",
        "PORT": str(port),
        "METRICS_PORT": str(free_port()),
        "WORKER_METRICS_PORT": str(free_port()),
        "WORKER_HEARTBEAT_FILE": str(heartbeat_file),
        **extra,
    }
    for unset in ("DATABASE_URL", "REDIS_URL", "SMTP_URL", "HOST"):
        env.pop(unset, None)
    return env, port


def gunicorn(env: dict[str, str], log_path: Path) -> ServerProcess:
    """A real Gunicorn master; a free metrics port and no drain delay unless `env` says."""
    env = {"METRICS_PORT": str(free_port()), "SHUTDOWN_DRAIN_SECONDS": "0", **env}
    return ServerProcess(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"], env, log_path
    )


def start_web(
    database_url: str, redis_url: str, log_path: Path, **env: str
) -> tuple[ServerProcess, int]:
    """A real Gunicorn serving the app on a free port, started (/startupz is 200)."""
    port = free_port()
    process = gunicorn(
        {
            "APP_ENV": "test",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "WEB_CONCURRENCY": "2",
            "LOG_LEVEL": "info",
            **env,
        },
        log_path,
    )
    try:
        process.wait_until_http(port, "/startupz")
    except BaseException:
        process.kill()
        raise
    return process, port


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """One Prometheus scrape, as {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/metrics")
        body = connection.getresponse().read().decode()
    finally:
        connection.close()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def worker(env: dict[str, str], log_path: Path, *args: str) -> ServerProcess:
    return ServerProcess([sys.executable, "-m", "worker", *args], env, log_path)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (work horse, scheduler), from /proc."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            children = (task / "children").read_text().split()
            found.extend(int(child) for child in children)
            pending.extend(int(child) for child in children)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything it started, as a node loss or OOM kill would."""
    for victim in [pid, *descendants(pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
