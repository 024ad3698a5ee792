"""`make run`'s own figures: warm start to /readyz 200, and stop after SIGTERM.

    python -m bench.devstack        (also part of `make bench`)

Runs `python -m devtools run` with a temporary var dir: once cold (initdb, migrations,
not timed), then REPEATS warm starts (data directory present, schema at head), each
timed from the process start to the first /readyz 200 and from SIGTERM to its exit.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from devtools.processes import PROJECT_ROOT, dev_stack_env, http_call

REPEATS = int(os.environ.get("BENCH_DEVSTACK_REPEATS", "3"))


def _start(var_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], int, float]:
    """The stack, started; returns it, its port and the seconds to /readyz 200."""
    env, port = dev_stack_env(var_dir / "worker.heartbeat")
    started = time.perf_counter()
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "devtools", "run", "--var-dir", str(var_dir)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = started + 120
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the stack exited {process.returncode}: see {log}")
        try:
            if http_call("GET", port, "/readyz", timeout=2)[0] == 200:
                return process, port, time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.02)
    process.kill()
    raise RuntimeError(f"the stack never answered /readyz: see {log}")


def _stop(process: subprocess.Popen[bytes]) -> float:
    signalled = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    if process.returncode != 0:
        raise RuntimeError(f"the stack exited {process.returncode} after SIGTERM")
    return time.perf_counter() - signalled


def devstack_benchmarks(work: Path) -> dict[str, Any]:
    # Short: the Unix sockets live under it (about 100 bytes at most).
    var_dir = Path(tempfile.mkdtemp(prefix="bench-devstack-"))
    log = work / "devstack.log"
    try:
        process, _, cold = _start(var_dir, log)
        _stop(process)
        starts, stops = [], []
        for _ in range(REPEATS):
            process, _, seconds = _start(var_dir, log)
            starts.append(seconds)
            stops.append(_stop(process))
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)
    return {
        "make run: cold start to /readyz 200 (s)": cold,
        "make run: warm start to /readyz 200 (s), median": statistics.median(starts),
        "make run: warm start to /readyz 200 (s), max": max(starts),
        "make run: stop after SIGTERM (s), median": statistics.median(stops),
        "make run: stop after SIGTERM (s), max": max(stops),
    }


def main() -> int:
    work = Path(os.environ.get("BENCH_WORK_DIR", "var/bench"))
    work.mkdir(parents=True, exist_ok=True)
    for key, value in devstack_benchmarks(work).items():
        print(f"| {key} | {value:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
