"""A wall-clock bound on a block of code in the main thread, whatever it waits on.

A frozen PostgreSQL (SIGSTOP, a stalled disk, a partition without RST) never answers and
never sends `statement_timeout`: the kernel still ACKs what the client sends, so TCP
timeouts do not fire either, and psycopg waits forever. Only the client can bound that
wait: SIGALRM interrupts the wait (psycopg polls its socket in short slices, so signal
handlers run) and raises `DeadlineExceeded` there.

`DeadlineExceeded` is a BaseException, like KeyboardInterrupt: SQLAlchemy then
invalidates the connection it interrupted (a query is still in flight on it) instead of
returning it to the pool, and no `except Exception` on the way swallows it. Whoever sets
a deadline catches it and says what it means (a 503, a failed readiness check).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class DeadlineExceeded(BaseException):
    """The block ran past its deadline."""


def _expired(_signum: int, _frame: FrameType | None) -> None:
    raise DeadlineExceeded()


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise DeadlineExceeded in this block once `seconds` have passed.

    Nests: an inner deadline never extends an outer one, and the outer one resumes with
    what is left of it. Outside the main thread (signals go there only) it bounds nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    outer_left, _ = signal.getitimer(signal.ITIMER_REAL)
    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, _expired)
    bound = min(seconds, outer_left) if outer_left else seconds
    signal.setitimer(signal.ITIMER_REAL, bound)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left:
            # At least a microsecond: an outer deadline already past fires at once.
            left = outer_left - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-6))
