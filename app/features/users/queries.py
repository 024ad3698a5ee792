"""Reads of users, free of HTTP: one SQL statement each on the read engine."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, Row, bindparam, select, tuple_

from app.features.users.models import Position, User


class UserNotFound(Exception):
    """No user has that id."""


# What a read returns: the columns the API shows, plus the version (the ETag). Rows have
# the same attribute names as User, so responses are built from either the same way.
UserRow = Row[uuid.UUID, str, str, datetime, datetime, int]
COLUMNS = (User.id, User.email, User.name, User.created_at, User.updated_at, User.version)
_BY_ID = select(*COLUMNS).where(User.id == bindparam("id"))
_IN_ORDER = select(*COLUMNS).order_by(User.created_at, User.id).limit(bindparam("limit"))
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
