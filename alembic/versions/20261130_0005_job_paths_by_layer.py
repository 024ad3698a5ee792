"""job functions moved into app/features/: outbox rows name the new paths

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

Outbox rows store the import path RQ runs. The layout by layer moved both job functions,
so rows not yet completed (and the completed ones kept for OUTBOX_RETENTION_HOURS) are
rewritten; a relayed job then imports a function that exists.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MOVED = {
    "app.users.welcome_email.send_welcome_email": "app.features.users.jobs.send_welcome_email",
    "app.exports.job.run_export": "app.features.exports.jobs.run_export",
}

_RENAME = sa.text("UPDATE outbox SET function = :new WHERE function = :old")


def upgrade() -> None:
    for old, new in MOVED.items():
        op.execute(_RENAME.bindparams(old=old, new=new))


def downgrade() -> None:
    for old, new in MOVED.items():
        op.execute(_RENAME.bindparams(old=new, new=old))
