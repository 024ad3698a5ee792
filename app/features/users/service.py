"""Changes to users, free of HTTP: callers pass a session and plain values."""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app.features.users.jobs import WELCOME_EMAIL
from app.features.users.models import User
from app.features.users.queries import COLUMNS, UserNotFound, UserRow
from app.jobs.outbox import Outbox, insert_job_statement, job_parameters, new_job

EMAIL_UNIQUE = "uq_users_email"

# Built once: the user and its welcome job in one statement (two data-modifying CTEs), as
# Core on the table (an ORM-enabled INSERT, and building the statement per request, cost
# more than the round trip it saves).
_USERS = cast(Table, User.__table__)
_NEW_USER = (
    insert(_USERS)
    .values(id=bindparam("id"), email=bindparam("email"), name=bindparam("name"), version=1)
    .returning(*(_USERS.c[column.key] for column in COLUMNS))
    .cte("new_user")
)
_CREATE = select(*_NEW_USER.c).add_cte(insert_job_statement().cte("welcome_job"))


class EmailAlreadyRegistered(Exception):
    """Another user already has that email address."""


class ConcurrentUpdate(Exception):
    """The user changed between reading it and writing it."""


class UserService:
    """Creates, changes and deletes users inside the caller's session."""

    def __init__(self, session: Session, outbox: Outbox) -> None:
        self._session = session
        self._outbox = outbox

    def create(self, *, email: str, name: str) -> UserRow:
        """Add a user and its welcome email job to the caller's transaction, in one
        statement; the caller commits (in the web layer, @idempotent, once per request)."""
        user_id = uuid.uuid4()
        welcome = new_job(WELCOME_EMAIL, user_id=str(user_id))
        parameters = {"id": user_id, "email": email, "name": name, **job_parameters(welcome)}
        try:
            row = self._session.connection().execute(_CREATE, parameters).one()
        except IntegrityError as exc:
            self._session.rollback()
            raise _integrity_problem(exc) from None
        self._outbox.dispatch_after_commit(self._session, welcome)
        return row

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
            raise _integrity_problem(exc) from None
        except StaleDataError:
            self._session.rollback()
            raise ConcurrentUpdate from None


def _integrity_problem(error: IntegrityError) -> Exception:
    constraint = getattr(getattr(error.orig, "diag", None), "constraint_name", None)
    return EmailAlreadyRegistered() if constraint == EMAIL_UNIQUE else error
