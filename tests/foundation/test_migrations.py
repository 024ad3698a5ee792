"""Alembic: up, down and up again on an empty database; models and migrations agree."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, inspect

from app.foundation.migrations import (
    alembic_config,
    head_revisions,
    schema_revisions,
    upgrade_to_head,
)
from tests.support.servers import fresh_database


def test_upgrade_downgrade_upgrade_and_no_drift(postgres_url: str) -> None:
    with fresh_database(postgres_url) as url:
        engine = create_engine(url)
        upgrade_to_head(url)
        assert schema_revisions(engine) == head_revisions()
        assert "users" in inspect(engine).get_table_names()

        # `alembic check` fails if the models describe a schema the migrations do not build.
        command.check(alembic_config(url))

        command.downgrade(alembic_config(url), "base")
        assert "users" not in inspect(engine).get_table_names()
        assert schema_revisions(engine) == set()

        upgrade_to_head(url)
        assert schema_revisions(engine) == head_revisions()
        engine.dispose()
