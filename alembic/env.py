"""Alembic environment: the database URL comes from the service's own settings."""

from __future__ import annotations

import logging

from alembic import context
from sqlalchemy import create_engine, pool

from app.features.tables import METADATA
from app.foundation.config import load_settings_or_exit
from app.foundation.logs import configure_logging

config = context.config


def _database_url() -> str:
    url = config.attributes.get("database_url")
    if url:
        # Called from code (dev stack, tests), which has already set up logging.
        return str(url)
    settings = load_settings_or_exit()
    configure_logging(settings.log_level)
    logging.getLogger("alembic").setLevel(logging.INFO)  # "Running upgrade ..." lines
    if settings.database_url is None:
        raise SystemExit("config error: DATABASE_URL: is required to run migrations")
    return settings.database_url.get_secret_value()


def run_migrations() -> None:
    # NullPool: a migration is one short session; nothing to keep open afterwards.
    engine = create_engine(_database_url(), poolclass=pool.NullPool, hide_parameters=True)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=METADATA,
            transaction_per_migration=True,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run against a database")
run_migrations()
