"""A real SMTP server in the test process (aiosmtpd) that records what it receives."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


class _Recorder:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.messages: list[EmailMessage] = []
        # When each message arrived (time.monotonic()), in the order of `messages`.
        self.arrivals: list[float] = []
        self.receiving = threading.Event()
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.receiving.set()
        if self.delay:
            import asyncio

            await asyncio.sleep(self.delay)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(parsed)
            self.arrivals.append(time.monotonic())
        return "250 Message accepted for delivery"


class SmtpSink:
    """Listens on 127.0.0.1:port; `delay` slows each DATA to keep a job busy; with an
    `authenticator`, clients must log in (AUTH over plain SMTP: a test on loopback)."""

    def __init__(self, port: int, delay: float = 0.0, authenticator: Any = None) -> None:
        self.port = port
        self.recorder = _Recorder(delay)
        auth: dict[str, Any] = {}
        if authenticator is not None:
            auth = {"authenticator": authenticator, "auth_required": True}
            auth["auth_require_tls"] = False
        self._controller = Controller(self.recorder, hostname="127.0.0.1", port=port, **auth)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[EmailMessage]:
        return list(self.recorder.messages)

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def wait_for(self, count: int, timeout: float) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.recorder.messages) < count:
            time.sleep(0.05)
        return self.messages
