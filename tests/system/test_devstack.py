"""`make run` (python -m devtools run): embedded PostgreSQL and Redis, migrations, Gunicorn,
the worker, the development inbox, and the make targets that work on the running stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from app.foundation.secret_urls import mask_url
from devtools.processes import PROJECT_ROOT, ServerProcess, free_port, http_call


def test_dev_stack_serves_users_with_nothing_external_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "APP_ENV": "development",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "WORKER_HEARTBEAT_FILE": str(tmp_path / "worker.heartbeat"),
        "METRICS_PORT": str(free_port()),
        "WORKER_METRICS_PORT": str(free_port()),
    }
    for unset in ("DATABASE_URL", "REDIS_URL", "SMTP_URL", "HOST"):
        env[unset] = ""
    stack = ServerProcess(
        [sys.executable, "-m", "devtools", "run", "--var-dir", str(tmp_path / "var")],
        env,
        tmp_path / "dev.log",
    )
    try:
        stack.wait_until_http(port, "/startupz", timeout=60)
        status, headers, _ = http_call(
            "POST", port, "/api/v1/users", {"email": "dev@example.com", "name": "Dev"}
        )
        assert status == 201
        assert http_call("GET", port, headers["Location"])[0] == 200
        assert http_call("GET", port, "/readyz")[2]["status"] == "ready"
        # The worker sends the welcome email to the stack's own inbox: one file under
        # var/mail, which `make mail` lists and shows.
        mail = tmp_path / "var" / "mail"
        deadline = time.monotonic() + 10
        while not list(mail.glob("*.eml")):
            assert time.monotonic() < deadline, stack.output()
            time.sleep(0.1)
        inbox = make("mail", var_dir=tmp_path / "var")
        assert "to Dev <dev@example.com>" in inbox
        assert "Subject: Welcome!" in inbox
        assert "Hello Dev," in inbox

        banner = (tmp_path / "var" / "banner.txt").read_text()
        assert f"http://127.0.0.1:{port}" in banner
        assert f"http://127.0.0.1:{env['METRICS_PORT']}/metrics" in banner
        assert str(mail) in banner
        assert "postgresql+psycopg://" in banner

        # psql and redis-cli reach the running stack through its stack.env; seed goes
        # through the users service, so each user's welcome job reaches Redis.
        assert make("psql", var_dir=tmp_path / "var", ARGS="-Atc 'select 1'").strip() == "1"
        assert make("redis-cli", var_dir=tmp_path / "var", ARGS="ping").strip() == "PONG"
        assert "25 users created" in make("seed", var_dir=tmp_path / "var", N="25")
        count = make("psql", var_dir=tmp_path / "var", ARGS="-Atc 'select count(*) from users'")
        assert count.strip() == "26"
        deadline = time.monotonic() + 30
        while len(list(mail.glob("*.eml"))) < 26:
            assert time.monotonic() < deadline, stack.output()
            time.sleep(0.2)

        # Operator commands find the running stack with nothing set by hand: the
        # servers' URLs are in var/stack.env, which Settings read from the working dir.
        stack_file = (tmp_path / "var" / "stack.env").read_text()
        assert "APP_ENV=development\n" in stack_file
        for command in (["app", "config"], ["worker", "failed", "list"]):
            done = operator_command(command, cwd=tmp_path)
            assert done.returncode == 0, done.stderr
        written = dict(line.split("=", 1) for line in stack_file.splitlines())
        shown = json.loads(operator_command(["app", "config"], cwd=tmp_path).stdout)
        assert shown["DATABASE_URL"] == mask_url(written["DATABASE_URL"])
        assert shown["REDIS_URL"] == mask_url(written["REDIS_URL"])

        assert stack.terminate() == 0
    finally:
        stack.kill()
    # JSON log lines; the banner is plain text for people.
    lines = [json.loads(line) for line in stack.output().splitlines() if line.startswith("{")]
    assert any(line["message"] == "embedded PostgreSQL started" for line in lines)
    [ready] = [line for line in lines if line["message"] == "gunicorn ready"]
    assert ready["bind"] == [f"127.0.0.1:{port}"], "development listens on loopback only"
    assert (tmp_path / "var" / "postgres" / "PG_VERSION").exists()
    assert not (tmp_path / "var" / "stack.env").exists(), "removed when the stack stops"
    assert not (tmp_path / "var" / "banner.txt").exists()


def make(target: str, *, var_dir: Path, **variables: str) -> str:
    """A make target as a developer types it in another terminal while the stack runs."""
    env = {key: value for key, value in os.environ.items() if not key.endswith("_URL")}
    env.pop("MAKEFLAGS", None)
    assignments = [f"{name}={value}" for name, value in variables.items()]
    done = subprocess.run(
        ["make", "--no-print-directory", target, f"VAR_DIR={var_dir}", *assignments],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def operator_command(args: list[str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m …` as an operator types it in the checkout: no URL in the environment."""
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
