"""`make run` stops everything it started when `make` itself gets SIGTERM or SIGINT.

Make passes SIGTERM on to its recipe's child but not SIGINT (it assumes the terminal sent
that to the whole process group) and then waits for the child forever: the recipe
`exec`s the stack, and the stack watches its parent (devtools/parent_watch.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from devtools.embedded import EmbeddedPostgres
from devtools.processes import PROJECT_ROOT, descendants, dev_stack_env, http_call
from devtools.stack import migrate_if_behind

# The issue asks for 3 s; the bound leaves room for a 2-core machine shared with others.
STOP_BOUND_SECONDS = 6.0


@pytest.fixture(scope="module")
def warm_var() -> Iterator[Path]:
    """A var dir whose PostgreSQL is initialised and migrated: each test is a warm start.
    Short paths: Unix socket paths are limited to about 100 bytes."""
    base = Path(tempfile.mkdtemp(prefix="mkrun-"))
    postgres = EmbeddedPostgres(base / "var" / "postgres")
    migrate_if_behind(postgres.start())
    postgres.close()
    yield base / "var"
    shutil.rmtree(base, ignore_errors=True)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def start_make_run(var_dir: Path, tmp: Path, log: BinaryIO) -> tuple[subprocess.Popen[bytes], int]:
    # Every temporary directory of the stack lands in `tmp`, where the test can look.
    env, port = dev_stack_env(tmp / "worker.heartbeat", TMPDIR=str(tmp))
    for unset in ("MAKEFLAGS", "MFLAGS"):
        env.pop(unset, None)
    make = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"VAR_DIR={var_dir}"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # nothing else in the test's process group is signalled
    )
    return make, port


def wait_until_ready(make: subprocess.Popen[bytes], port: int, var_dir: Path, log: Path) -> None:
    deadline = time.monotonic() + 90
    while not (var_dir / "banner.txt").exists():
        assert make.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    assert http_call("GET", port, "/readyz")[0] == 200


def server_pids(var_dir: Path, tmp: Path) -> list[int]:
    """PostgreSQL and Redis daemonize: they are not below make, so found by pid file."""
    postmaster = int((var_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    [redis_pid_file] = tmp.glob("*/redis.pid")
    return [postmaster, int(redis_pid_file.read_text())]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_make_stops_the_whole_stack(
    signum: signal.Signals, warm_var: Path, tmp_path: Path
) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="mkrun-tmp-"))
    log = tmp_path / "make-run.log"
    with log.open("wb") as output:
        make, port = start_make_run(warm_var, tmp, output)
    try:
        wait_until_ready(make, port, warm_var, log)
        started = [*descendants(make.pid), *server_pids(warm_var, tmp)]
        # The stack, Gunicorn's master and workers, the worker and its scheduler.
        assert len(started) >= 7, started

        signalled = time.monotonic()
        make.send_signal(signum)
        make.wait(30)
        took = time.monotonic() - signalled
        print(f"make run stopped {took:.2f} s after {signum.name}")

        assert took < STOP_BOUND_SECONDS, log.read_text()
        assert [pid for pid in started if alive(pid)] == [], log.read_text()
        assert [path.name for path in tmp.iterdir() if path.is_dir()] == []
        assert not (warm_var / "stack.env").exists()
        assert not (warm_var / "banner.txt").exists()
        assert "stack stopped" in log.read_text()
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)
