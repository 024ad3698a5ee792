"""The table of Idempotency-Keys, and its pruning by the worker's housekeeping.

How a request uses a key (replay, 409, 422) is the web layer's: app/web/idempotency.py.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, LargeBinary, String, delete, func
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.foundation.database import Base


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    scope: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    location: Mapped[str | None] = mapped_column(String(500))
    etag: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def delete_expired_keys(session: Session) -> int:
    with session.begin():
        result = session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.expires_at <= func.now())
        )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
