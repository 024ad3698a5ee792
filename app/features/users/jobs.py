"""Job: the welcome email, sent at most once per user however often the job runs."""

from __future__ import annotations

import uuid
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from sqlalchemy import func, select, text, update

from app.features.users.models import User
from app.foundation.config import Settings
from app.jobs.context import job_context
from app.jobs.queue import JobSpec

WELCOME_EMAIL = JobSpec(func="app.features.users.jobs.send_welcome_email", queue="default")


def welcome_message(
    *, user_id: uuid.UUID, email: str, name: str, settings: Settings
) -> EmailMessage:
    """A plain-text and an HTML part; the Message-ID is stable per user, so a receiver
    can drop a copy re-sent after a crash between sending and recording it."""
    sender = parseaddr(settings.mail_from)[1]
    domain = sender.rpartition("@")[2] or "localhost"
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = Address(display_name=name, addr_spec=email)
    message["Subject"] = "Welcome!"
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = f"<welcome.{user_id}@{domain}>"
    message.set_content(f"Hello {name},\n\nwelcome aboard. Your account is ready.\n")
    message.add_alternative(
        f"<!doctype html><html><body><p>Hello {_html(name)},</p>"
        "<p>welcome aboard. Your account is ready.</p></body></html>",
        subtype="html",
    )
    return message


def _html(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def send_welcome_email(user_id: str) -> str:
    """Send unless already sent.

    Concurrent runs of the same job (a duplicate enqueue, a retry racing an abandoned run)
    send one email: they queue on an advisory lock of this user's welcome email, held
    across the SMTP conversation. It is not the user's row lock, so a PATCH of the user
    meanwhile does not wait for the mail server."""
    context = job_context()
    with context.sessions() as session, session.begin():
        session.execute(_LOCK_WELCOME, {"key": f"welcome:{user_id}"})
        row = session.execute(
            select(User.id, User.email, User.name, User.welcome_email_sent_at).where(
                User.id == uuid.UUID(user_id)
            )
        ).one_or_none()
        if row is None:
            return "skipped: user deleted"
        if row.welcome_email_sent_at is not None:
            return "skipped: already sent"
        context.mailer.send(
            welcome_message(
                user_id=row.id, email=row.email, name=row.name, settings=context.settings
            )
        )
        # Bookkeeping, not part of the representation: neither updated_at nor the
        # version (the ETag) changes, so a client's cached copy stays valid.
        session.execute(
            update(User)
            .where(User.id == row.id)
            .values(welcome_email_sent_at=func.now(), updated_at=User.updated_at)
        )
    return "sent"


# Released at the end of the transaction, whatever ends it.
_LOCK_WELCOME = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
