"""What a job needs (settings, database, mailer), installed once per worker process.

RQ calls job functions by import path with plain arguments, so it cannot inject them.
The worker's wiring (worker/__main__.py) installs one JobContext at startup, before it
forks work horses, and jobs read it as Flask views read current_app.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.foundation.config import Settings
from app.foundation.mail import Mailer


@dataclass(frozen=True)
class JobContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    mailer: Mailer


_installed: JobContext | None = None


def install_job_context(context: JobContext | None) -> None:
    global _installed
    _installed = context


def job_context() -> JobContext:
    if _installed is None:
        raise RuntimeError("no JobContext installed: jobs run inside `python -m worker`")
    return _installed
