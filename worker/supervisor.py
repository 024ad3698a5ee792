"""WORKER_PROCESSES > 1: one `python -m worker` runs that many worker processes.

Each job runs in its worker's own process, so one process uses one core; a pod uses its
cores through several. The supervisor passes every SIGTERM/SIGINT on (the first is a warm
shutdown in each child, a second a cold one), restarts a child that dies while no
stop was asked (in burst mode a child's exit is its end), and exits once every child has:
0 only if each exited 0.

Nothing outlives what started it: each child runs in a process group of its own, which
is killed when the child dies, and asks the kernel for SIGTERM when the supervisor dies
(worker/__main__.py), so a SIGKILLed supervisor leaves no worker behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from types import FrameType

logger = logging.getLogger("worker.supervisor")
# The environment variable that tells a child who its supervisor is.
SUPERVISOR_PID = "WORKER_SUPERVISOR_PID"
# A child still starting when the stop came dies of the signal before RQ handles it:
# it held no job, so that is a clean stop too.
_CLEAN = frozenset({0, -signal.SIGTERM, -signal.SIGINT})


class Supervisor:
    RESTART_DELAY_SECONDS = 0.5
    POLL_SECONDS = 0.2

    def __init__(
        self,
        count: int,
        start_child: Callable[[int, int], subprocess.Popen[bytes]],
        child_exited: Callable[[int], None],
        *,
        restart: bool,
    ) -> None:
        self._count = count
        self._start_child = start_child
        self._child_exited = child_exited
        self._restart = restart
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._generations = dict.fromkeys(range(count), 0)
        self._statuses: dict[int, int] = {}
        self._stopping = False

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._pass_on)
        signal.signal(signal.SIGINT, self._pass_on)
        for index in range(self._count):
            self._start(index)
        while len(self._statuses) < self._count:
            time.sleep(self.POLL_SECONDS)
            self._reap()
        return 0 if all(status in _CLEAN for status in self._statuses.values()) else 1

    def _start(self, index: int) -> None:
        self._children[index] = self._start_child(index, self._generations[index])
        self._generations[index] += 1
        logger.info(
            "worker process started",
            extra={"index": index, "child_pid": self._children[index].pid},
        )

    def _reap(self) -> None:
        for index, child in list(self._children.items()):
            status = child.poll()
            if status is None:
                continue
            del self._children[index]
            # Anything the child started and left behind goes with it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
            self._child_exited(child.pid)
            if self._stopping or not self._restart:
                self._statuses[index] = status
                continue
            logger.error(
                "worker process exited unasked; restarting it",
                extra={"index": index, "child_pid": child.pid, "status": status},
            )
            time.sleep(self.RESTART_DELAY_SECONDS)
            self._start(index)

    def _pass_on(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True
        for child in self._children.values():
            if child.poll() is None:
                child.send_signal(signum)
