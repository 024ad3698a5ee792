"""Changes to users, free of HTTP: callers pass a session and plain values."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app.features.users.jobs import WELCOME_EMAIL
from app.features.users.models import User
from app.features.users.queries import UserNotFound
from app.jobs.outbox import Outbox, add_job

EMAIL_UNIQUE = "uq_users_email"


class EmailAlreadyRegistered(Exception):
    """Another user already has that email address."""


class ConcurrentUpdate(Exception):
    """The user changed between reading it and writing it."""


class UserService:
    """Creates, changes and deletes users inside the caller's session."""

    def __init__(self, session: Session, outbox: Outbox) -> None:
        self._session = session
        self._outbox = outbox

    def create(self, *, email: str, name: str) -> User:
        """Register a user and, in the same transaction, the welcome email job."""
        user = User(id=uuid.uuid4(), email=email, name=name)
        self._session.add(user)
        welcome = add_job(self._session, WELCOME_EMAIL, user_id=str(user.id))
        self._commit()
        self._outbox.dispatch(self._session, [welcome])
        return user

    def get(self, user_id: uuid.UUID) -> User:
        """The user to change, tracked by the session."""
        user = self._session.get(User, user_id)
        if user is None:
            raise UserNotFound(user_id)
        return user

    def update(self, user: User, changes: dict[str, Any]) -> User:
        """Apply `changes` (field → new value) to a user read in this session."""
        for field, value in changes.items():
            setattr(user, field, value)
        self._commit()
        return user

    def delete(self, user: User) -> None:
        self._session.delete(user)
        self._commit()

    def _commit(self) -> None:
        try:
            self._session.commit()
        except IntegrityError as exc:
            self._session.rollback()
            if getattr(getattr(exc.orig, "diag", None), "constraint_name", None) == EMAIL_UNIQUE:
                raise EmailAlreadyRegistered from None
            raise
        except StaleDataError:
            self._session.rollback()
            raise ConcurrentUpdate from None
