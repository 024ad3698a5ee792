"""Every table the service owns, registered on Base: the one list Alembic compares with
the database (`make revision` sees a new table only once its models module is here)."""

from __future__ import annotations

from app.features.exports.models import Export, ExportChunk
from app.features.users.models import User
from app.foundation.database import Base
from app.foundation.idempotency_keys import IdempotencyKey
from app.jobs.outbox import OutboxMessage

TABLE_MODELS = (User, Export, ExportChunk, OutboxMessage, IdempotencyKey)
METADATA = Base.metadata
