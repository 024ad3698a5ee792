"""Sending email: SMTP in production, a log line in development without SMTP_URL."""

from __future__ import annotations

import logging
import smtplib
import ssl
import time
from email.message import Message
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from app.foundation.config import Settings

logger = logging.getLogger(__name__)


class Mailer(Protocol):
    def send(self, message: Message) -> None:
        """Deliver the message or raise (the job is then retried)."""

    def close(self) -> None:
        """Let go of any connection; the next send opens a new one."""


class SmtpMailer:
    """smtp://[user:password@]host[:port][?starttls=true] or smtps://… (implicit TLS).

    One SMTP session carries many messages: a new one per message (TCP, greeting, EHLO,
    TLS, AUTH) costs more than the message itself. The session is renewed after
    MAX_MESSAGES or MAX_AGE_SECONDS, after any error, and once, at once, when the server
    dropped it while idle."""

    MAX_MESSAGES = 100
    MAX_AGE_SECONDS = 60.0

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self._implicit_tls = parts.scheme == "smtps"
        self._starttls = parse_qs(parts.query).get("starttls", ["false"])[0].lower() == "true"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (465 if self._implicit_tls else 25)
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._timeout = timeout
        self._session: smtplib.SMTP | None = None
        self._opened_at = 0.0
        self._sent = 0

    def __repr__(self) -> str:
        return f"SmtpMailer(host={self._host!r}, port={self._port})"

    def send(self, message: Message) -> None:
        if self._session is not None and self._worn_out():
            self.close()
        reused = self._session is not None
        try:
            self._connected().send_message(message)
        except smtplib.SMTPServerDisconnected:
            self.close()
            if not reused:
                raise
            self._connected().send_message(message)  # the idle session had timed out
        except (smtplib.SMTPException, OSError):
            self.close()
            raise
        self._sent += 1

    def close(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        try:
            session.quit()
        except (smtplib.SMTPException, OSError):
            session.close()

    def _worn_out(self) -> bool:
        age = time.monotonic() - self._opened_at
        return self._sent >= self.MAX_MESSAGES or age >= self.MAX_AGE_SECONDS

    def _connected(self) -> smtplib.SMTP:
        if self._session is None:
            self._session = self._open()
            self._opened_at = time.monotonic()
            self._sent = 0
        return self._session

    def _open(self) -> smtplib.SMTP:
        context = ssl.create_default_context()
        smtp = (
            smtplib.SMTP_SSL(self._host, self._port, timeout=self._timeout, context=context)
            if self._implicit_tls
            else smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        )
        try:
            if self._starttls:
                smtp.starttls(context=context)
            if self._username and self._password:
                smtp.login(self._username, self._password)
        except BaseException:
            smtp.close()
            raise
        return smtp


class ConsoleMailer:
    """Development backend: the message is logged instead of sent."""

    def close(self) -> None:
        """Nothing to let go of."""

    def send(self, message: Message) -> None:
        logger.info(
            "email not sent (console backend: set SMTP_URL)",
            extra={
                "to": message["To"],
                "subject": message["Subject"],
                "message_id": message["Message-ID"],
            },
        )


def create_mailer(settings: Settings) -> Mailer:
    if settings.smtp_url is None:
        return ConsoleMailer()
    return SmtpMailer(settings.smtp_url.get_secret_value(), settings.smtp_timeout)
