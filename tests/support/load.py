"""Bounded load on loopback for lifecycle tests: a few client threads, one request at a
time each, every outcome counted."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter

from devtools.processes import http_call


class BalancedLoad:
    """Sends GETs until told to stop (or `max_seconds`); records every outcome in order."""

    def __init__(self, port: int, clients: int, max_seconds: float = 120) -> None:
        self.port = port
        self.sent = self.succeeded = 0
        self.failures: list[str] = []
        self.outcomes: list[tuple[float, str]] = []  # (monotonic time, "200" or error)
        self.stop = threading.Event()
        self._deadline = time.monotonic() + max_seconds
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(clients)]

    def _run(self) -> None:
        while not self.stop.is_set() and time.monotonic() < self._deadline:
            try:
                status = http_call("GET", self.port, "/api/v1/users?limit=5", timeout=10)[0]
                outcome = str(status)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                # A worker killed mid-response leaves a short body: counted, not raised.
                outcome = type(exc).__name__
            with self._lock:
                self.sent += 1
                self.outcomes.append((time.monotonic(), outcome))
                if outcome == "200":
                    self.succeeded += 1
                else:
                    self.failures.append(outcome)

    def tally(self) -> Counter[str]:
        return Counter(outcome for _, outcome in self.outcomes)

    def __enter__(self) -> BalancedLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join()
