"""Alembic, driven from code: applying migrations and checking the schema is at head."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str | None = None) -> Config:
    """The project's Alembic config (from pyproject.toml), optionally bound to a URL."""
    config = Config(toml_file=PROJECT_ROOT / "pyproject.toml")
    if database_url is not None:
        config.attributes["database_url"] = database_url
    return config


def upgrade_to_head(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")


def head_revisions() -> set[str]:
    """The revisions the code expects; read once, they only change with a deploy."""
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def schema_revisions(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())
