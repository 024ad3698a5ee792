"""Stop the development stack when whatever started it is being stopped.

`make run` runs the stack as make's child (the recipe `exec`s Python: no shell or uv in
between). GNU make passes SIGTERM on to its children, but not SIGINT or SIGHUP sent to
make alone (it assumes the terminal signalled the whole process group), and then waits
for them forever. Two things catch what make does not pass on:

- PR_SET_PDEATHSIG (Linux): the kernel sends us SIGTERM when the parent dies, even by
  SIGKILL;
- a watcher thread that reads the parent's caught signals from /proc: make's handler for
  a fatal signal resets that signal to its default before waiting for the children, so a
  parent that stops catching SIGINT, SIGTERM, SIGHUP or SIGQUIT is being stopped.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from app.foundation.parent_death import die_with_parent

logger = logging.getLogger("devtools.stack")

_STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def caught_signals(pid: int) -> set[int]:
    """The signals `pid` has a handler for (SigCgt in /proc/PID/status); empty if unknown."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return set()
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            mask = int(line.split()[1], 16)
            return {number for number in range(1, 65) if mask & (1 << (number - 1))}
    return set()


class ParentWatch:
    """Calls `on_stop` once when the parent dies or starts handling a stopping signal."""

    def __init__(self, on_stop: Callable[[], None], interval: float = 0.1) -> None:
        self._on_stop = on_stop
        self._interval = interval
        self._parent = os.getppid()
        self._watched = caught_signals(self._parent) & set(_STOPPING_SIGNALS)
        self._done = threading.Event()

    def start(self) -> ParentWatch:
        die_with_parent()
        threading.Thread(target=self._run, name="parent-watch", daemon=True).start()
        return self

    def stop(self) -> None:
        self._done.set()

    def parent_stopping(self) -> bool:
        if os.getppid() != self._parent:
            return True  # reparented: the parent is gone
        return bool(self._watched - caught_signals(self._parent))

    def _run(self) -> None:
        while not self._done.wait(self._interval):
            if self.parent_stopping():
                logger.info("parent is stopping", extra={"parent_pid": self._parent})
                self._on_stop()
                return
