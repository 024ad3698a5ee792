"""Every kind of background job: the one list the worker and the web app read.

The worker counts their runs by kind; the worker's CLI and the admin API look for failed
jobs on every queue listed here (not only those one worker listens to). WORKER_QUEUES
defaults to these queues (a test keeps the two in agreement).
"""

from __future__ import annotations

from app.features.exports.jobs import USERS_EXPORT
from app.features.users.jobs import WELCOME_EMAIL
from app.jobs.queue import JobSpec

JOB_KINDS: tuple[JobSpec, ...] = (WELCOME_EMAIL, USERS_EXPORT)


def queues_of(kinds: tuple[JobSpec, ...] = JOB_KINDS) -> list[str]:
    """The queues these kinds go to, in the order first listed."""
    return list(dict.fromkeys(kind.queue for kind in kinds))
