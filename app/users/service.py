"""Rules of the users resource, free of HTTP: callers pass a session and plain values."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app.outbox import Outbox, add_job
from app.users.models import User
from app.users.welcome_email import WELCOME_EMAIL

Position = tuple[datetime, uuid.UUID]
EMAIL_UNIQUE = "uq_users_email"


class UserNotFound(Exception):
    """No user has that id."""


class EmailAlreadyRegistered(Exception):
    """Another user already has that email address."""


class ConcurrentUpdate(Exception):
    """The user changed between reading it and writing it."""


@dataclass(frozen=True)
class UserPage:
    users: list[User]
    next_position: Position | None


class UserService:
    """Creates, reads, changes and deletes users inside the caller's session."""

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
        user = self._session.get(User, user_id)
        if user is None:
            raise UserNotFound(user_id)
        return user

    def list_page(self, *, limit: int, after: Position | None) -> UserPage:
        """Users in creation order, `limit` at a time, starting after a keyset position."""
        query = select(User).order_by(User.created_at, User.id).limit(limit + 1)
        if after is not None:
            query = query.where(tuple_(User.created_at, User.id) > after)
        users = list(self._session.scalars(query))
        if len(users) <= limit:
            return UserPage(users, None)
        last = users[limit - 1]
        return UserPage(users[:limit], (last.created_at, last.id))

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
