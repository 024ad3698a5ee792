"""The development inbox: an SMTP server of `make run`'s own that keeps every message.

With no SMTP_URL, `make run` starts this server on 127.0.0.1 and points the worker's
SMTP_URL at it; each message lands as one `.eml` file (headers and body, as received)
under var/mail/, which `make mail` lists and shows. Development only: it accepts mail
for any address and relays nothing.
"""

from __future__ import annotations

import email
import email.policy
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

from devtools.processes import free_port


class _Keeper:
    """aiosmtpd handler: write each message to its own file, atomically."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # Sortable by arrival, unique even for two messages in the same millisecond.
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.eml"
        partial = self.directory / f".{name}.partial"
        partial.write_bytes(envelope.original_content or envelope.content)
        os.replace(partial, self.directory / name)  # `make mail` never sees half a file
        return "250 Message kept in the development inbox"


class Inbox:
    """Listens on 127.0.0.1 (a free port unless given) while the stack runs."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self._controller: Any = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> Inbox:
        from aiosmtpd.controller import Controller

        # aiosmtpd logs every connection at INFO: one line per email is the worker's job.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._controller = Controller(_Keeper(self.directory), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


def messages(directory: Path) -> list[Path]:
    """The kept messages, oldest first."""
    return sorted(directory.glob("*.eml")) if directory.is_dir() else []


def summary(path: Path) -> str:
    """One line: file name, date, recipient, subject."""
    message = _parse(path)
    return f"{path.name}  {message['Date'] or '-'}  to {message['To']}  {message['Subject']!r}"


def render(path: Path) -> str:
    """Headers a reader cares about and the plain-text body (or the first part)."""
    message = _parse(path)
    headers = ("From", "To", "Subject", "Date")
    lines = [f"{name}: {message[name]}" for name in headers if message[name]]
    body = message.get_body(preferencelist=("plain", "html"))
    text = body.get_content() if body is not None else message.get_payload()
    return "\n".join([*lines, "", str(text).rstrip(), ""])


def _parse(path: Path) -> Any:
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def show(directory: Path, name: str | None) -> str:
    """`make mail`: the list, then the newest message (or the one named)."""
    found = messages(directory)
    if not found:
        return f"no messages in {directory}\n"
    chosen = directory / Path(name).name if name else found[-1]
    if not chosen.is_file():
        return f"no message {name!r} in {directory}\n"
    listing = "\n".join(summary(path) for path in found)
    return f"{listing}\n\n--- {chosen.name}\n{render(chosen)}"
