"""Sending email: SMTP in production, a log line in development without SMTP_URL."""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from app.foundation.config import Settings

logger = logging.getLogger(__name__)


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Deliver the message or raise (the job is then retried)."""


class SmtpMailer:
    """smtp://[user:password@]host[:port][?starttls=true] or smtps://… (implicit TLS)."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self._implicit_tls = parts.scheme == "smtps"
        self._starttls = parse_qs(parts.query).get("starttls", ["false"])[0].lower() == "true"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (465 if self._implicit_tls else 25)
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"SmtpMailer(host={self._host!r}, port={self._port})"

    def send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        smtp = (
            smtplib.SMTP_SSL(self._host, self._port, timeout=self._timeout, context=context)
            if self._implicit_tls
            else smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        )
        with smtp:
            if self._starttls:
                smtp.starttls(context=context)
            if self._username and self._password:
                smtp.login(self._username, self._password)
            smtp.send_message(message)


class ConsoleMailer:
    """Development backend: the message is logged instead of sent."""

    def send(self, message: EmailMessage) -> None:
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
