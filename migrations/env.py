"""Alembic environment: one sync connection, serialised by an advisory lock.

Several processes (the API and each worker) apply migrations at start; the lock makes the
first one do the work and the others find nothing left to do.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from flowledger.projections.tables import metadata

MIGRATION_LOCK_KEY = 0x466C6F774C6564  # "FlowLed"

config = context.config
target_metadata = metadata


def _url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        from flowledger.runtime.database import resolve_database  # noqa: PLC0415
        from flowledger.runtime.settings import get_settings  # noqa: PLC0415

        url = resolve_database(get_settings()).sqlalchemy_url
    return str(url)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(
        _url(), poolclass=pool.NullPool, connect_args=config.attributes.get("connect_args", {})
    )
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        connection.commit()
        try:
            context.configure(connection=connection, target_metadata=target_metadata)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
