"""A steady stream of sign-ups for the chaos suite, and what it takes to judge the
outcome: when each user was created, how long each request took, which emails arrived."""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Self

from sqlalchemy import create_engine, text

from devtools.processes import http_call
from devtools.smtp_sink import SmtpSink


class Background:
    """Runs `_step` every `interval` seconds in a thread, for the span of a `with`."""

    interval: float

    def __enter__(self) -> Self:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._step()

    def _step(self) -> None:
        raise NotImplementedError


@dataclass
class SignupStream(Background):
    """POSTs one user every `interval` seconds from one client until stopped; each
    request's status (or error) and duration are kept."""

    port: int
    interval: float = 0.1
    prefix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    answers: list[tuple[str, float]] = field(default_factory=list)  # (status, seconds)
    created_at: dict[str, float] = field(default_factory=dict)  # email -> monotonic time

    def _step(self) -> None:
        n = len(self.answers) + 1
        email = f"{self.prefix}.{n}@example.com"
        started = time.monotonic()
        try:
            status = str(http_call("POST", self.port, "/api/v1/users", _user(email), timeout=60)[0])
        except (OSError, http.client.HTTPException) as exc:
            status = type(exc).__name__
        self.answers.append((status, time.monotonic() - started))
        # A 503 may still have committed (the deadline cut the wait for COMMIT's
        # answer): the database, not the answer, says who exists.
        self.created_at[email] = started

    @property
    def worst_seconds(self) -> float:
        return max(seconds for _, seconds in self.answers)


@dataclass
class ProbeStream(Background):
    """Polls /healthz and /readyz as the kubelet would; keeps each probe's worst time."""

    port: int
    interval: float = 0.5
    worst: dict[str, float] = field(default_factory=lambda: {"/healthz": 0.0, "/readyz": 0.0})

    def _step(self) -> None:
        for path in self.worst:
            started = time.monotonic()
            # Whatever the answer, the time it took is what counts.
            with contextlib.suppress(OSError, http.client.HTTPException):
                http_call("GET", self.port, path, timeout=60)
            self.worst[path] = max(self.worst[path], time.monotonic() - started)


def _user(email: str) -> dict[str, str]:
    return {"email": email, "name": email.split("@")[0]}


def users_in_database(database_url: str, prefix: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT email FROM users WHERE email LIKE :prefix"), {"prefix": f"{prefix}.%"}
            )
            return {row.email for row in rows}
    finally:
        engine.dispose()


def wait_until_mailed(sink: SmtpSink, expected: set[str], timeout: float) -> dict[str, int]:
    """Until every expected address got mail (or the timeout); returns mails per address."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if expected <= set(mails_per_address(sink)):
            break
        time.sleep(0.1)
    time.sleep(1)  # a duplicate would arrive right behind the first copy
    return mails_per_address(sink)


def mails_per_address(sink: SmtpSink) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message in sink.messages:
        address = message["To"].addresses[0].addr_spec
        counts[address] = counts.get(address, 0) + 1
    return counts


def worst_delivery_seconds(sink: SmtpSink, stream: SignupStream) -> float:
    """From a user's POST to its email's arrival, the longest of any user."""
    arrivals: dict[str, float] = {}
    for message, arrived in zip(sink.messages, sink.recorder.arrivals, strict=True):
        arrivals.setdefault(message["To"].addresses[0].addr_spec, arrived)
    return max(
        (
            arrived - stream.created_at[address]
            for address, arrived in arrivals.items()
            if address in stream.created_at
        ),
        default=0.0,
    )
