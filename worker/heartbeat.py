"""Liveness for an exec probe: the worker touches a file on every loop; `check` reads it.

A local file, not Redis: liveness must say "this process is stuck", and a Redis outage
(during which the worker keeps looping and retrying) must not get every worker killed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def beat(path: Path) -> None:
    path.touch()
    os.utime(path)


def is_fresh(path: Path, max_age_seconds: float) -> bool:
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False
    return age <= max_age_seconds
