"""Applying Alembic migrations from code: at start, from ``flowledger migrate`` and in tests."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from flowledger.runtime.database import Database


def migrations_dir() -> Path:
    configured = os.environ.get("FLOWLEDGER_MIGRATIONS_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(database: Database) -> Config:
    folder = migrations_dir()
    config = Config(str(folder.parent / "alembic.ini"))
    config.set_main_option("script_location", str(folder))
    config.attributes["database_url"] = database.sqlalchemy_url
    config.attributes["connect_args"] = database.session_parameters()
    return config


def upgrade(database: Database, revision: str = "head") -> None:
    command.upgrade(alembic_config(database), revision)


def downgrade(database: Database, revision: str) -> None:
    command.downgrade(alembic_config(database), revision)


def current_revision(database: Database) -> str | None:
    engine = create_engine(
        database.sqlalchemy_url,
        poolclass=pool.NullPool,
        connect_args=database.session_parameters(),
    )
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision(database: Database) -> str | None:
    return ScriptDirectory.from_config(alembic_config(database)).get_current_head()
