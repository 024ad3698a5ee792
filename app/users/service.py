"""Rules of the users resource, free of HTTP: callers pass a session and plain values."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, bindparam, select, tuple_
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


# What a read returns: the columns the API shows, plus the version (the ETag). Rows have
# the same attribute names as User, so responses are built from either the same way.
UserRow = Row[uuid.UUID, str, str, datetime, datetime, int]
_COLUMNS = (User.id, User.email, User.name, User.created_at, User.updated_at, User.version)
_BY_ID = select(*_COLUMNS).where(User.id == bindparam("id"))
_IN_ORDER = select(*_COLUMNS).order_by(User.created_at, User.id).limit(bindparam("limit"))
_IN_ORDER_AFTER = _IN_ORDER.where(
    tuple_(User.created_at, User.id) > tuple_(bindparam("created_at"), bindparam("id"))
)


@dataclass(frozen=True)
class UserPage:
    users: list[UserRow]
    next_position: Position | None


class UserQueries:
    """Reads users with SQL on the read engine: one statement, no ORM unit of work.

    A GET needs no identity map, change tracking or transaction; the ORM's machinery for
    them cost more CPU than the query itself (make bench)."""

    def __init__(self, read_engine: Engine) -> None:
        self._engine = read_engine

    def get(self, user_id: uuid.UUID) -> UserRow:
        with self._engine.connect() as connection:
            row = connection.execute(_BY_ID, {"id": user_id}).one_or_none()
        if row is None:
            raise UserNotFound(user_id)
        return row

    def list_page(self, *, limit: int, after: Position | None) -> UserPage:
        """Users in creation order, `limit` at a time, starting after a keyset position."""
        with self._engine.connect() as connection:
            if after is None:
                result = connection.execute(_IN_ORDER, {"limit": limit + 1})
            else:
                created_at, user_id = after
                result = connection.execute(
                    _IN_ORDER_AFTER, {"limit": limit + 1, "created_at": created_at, "id": user_id}
                )
            users = list(result)
        if len(users) <= limit:
            return UserPage(users, None)
        last = users[limit - 1]
        return UserPage(users[:limit], (last.created_at, last.id))


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
