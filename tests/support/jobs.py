"""Queued jobs run by the worker's own code, inside the test process.

`python -m worker --burst` costs a process start per call; calling its entry function
runs the same ServiceWorker (the jobs, the outbox bookkeeping, the housekeeping)
without one. Process-level behaviour (signals, shutdowns, liveness) is
tested on real worker processes in tests/system.
"""

from __future__ import annotations

import signal
import uuid
from pathlib import Path
from typing import Any

from app.foundation.config import Settings
from app.jobs.context import install_job_context
from worker.__main__ import run_worker


def run_queued_jobs(settings: Settings, tmp_path: Path, **overrides: Any) -> None:
    """Run every queued job to completion, as a burst worker with these settings would."""
    values = {
        "worker_metrics_port": 0,
        "worker_heartbeat_file": str(tmp_path / f"heartbeat-{uuid.uuid4().hex[:8]}"),
        "outbox_relay_age_seconds": 0,
        **overrides,
    }
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert run_worker(settings.model_copy(update=values), burst=True, name=None) == 0
    finally:
        # RQ installs its shutdown handlers in the calling (here: pytest's) main thread.
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        install_job_context(None)
