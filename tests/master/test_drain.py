"""The master's drain: SIGTERM flags every worker unready, waits, then stops as before."""

from __future__ import annotations

import time
from pathlib import Path

from app.master.drain import Drain


class Arbiter:
    """Gunicorn's arbiter as the drain sees it: a TERM handler that stops the server."""

    def __init__(self, flag: Path) -> None:
        self.flag = flag
        self.stopped_with_flag: bool | None = None

    def handle_term(self) -> None:
        self.stopped_with_flag = self.flag.exists()


def test_term_flags_waits_then_stops_and_a_new_master_starts_unflagged(tmp_path: Path) -> None:
    flag = tmp_path / "draining"
    drain = Drain(flag, seconds=0.2)
    arbiter = Arbiter(flag)
    drain.install(arbiter)

    started = time.monotonic()
    arbiter.handle_term()

    assert time.monotonic() - started >= 0.2
    assert arbiter.stopped_with_flag is True
    drain.reset()
    assert not flag.exists()
