"""SIGTERM becomes a drain first: readiness fails in every worker before listeners close.

Runs only in the Gunicorn master (gunicorn.conf.py hooks). Sync workers drop the
connections still in the listen backlog when they stop (gunicorn #3397), so load balancers
must stop routing here first. Gunicorn has no pre-shutdown hook (#3181): its TERM handler
is wrapped. The flag is a file because the workers are other processes: each worker's
/readyz checks it (app/foundation/readiness_checks.py).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger("app.lifecycle")


class Drain:
    """The drain flag file every worker reads, and the master's wrapped TERM handler."""

    def __init__(self, flag: Path, *, seconds: float) -> None:
        self.flag = flag
        self._seconds = seconds

    def reset(self) -> None:
        """At master start: a flag left by a previous run must not make workers unready."""
        self.flag.unlink(missing_ok=True)

    def install(self, server: Any) -> None:
        """Wrap the arbiter's TERM handling: flag, wait SHUTDOWN_DRAIN_SECONDS while the
        workers keep serving, then stop as Gunicorn does. The master's loop pauses during
        the drain; the workers do not."""
        stop = server.handle_term

        def handle_term() -> None:
            self.flag.touch()
            logger.info("draining before shutdown", extra={"seconds": self._seconds})
            time.sleep(self._seconds)
            stop()

        server.handle_term = handle_term
