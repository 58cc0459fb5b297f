"""Alembic owns the schema: it applies, rolls back and re-applies on a real database, agrees
with the read-table definitions, and creates the event store exactly as the library would."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from eventsourcing.postgres import (
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresTrackingRecorder,
)
from sqlalchemy import create_engine, inspect, pool

from flowledger.projections.tables import metadata
from flowledger.runtime import migrations
from flowledger.runtime.database import Database, create_database_if_missing, drop_database

pytestmark = pytest.mark.integration


def tables(database: Database) -> set[str]:
    engine = create_engine(database.sqlalchemy_url, poolclass=pool.NullPool)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_round_trips(empty_database: Database) -> None:
    migrations.upgrade(empty_database)
    created = tables(empty_database)
    assert {"flowledger_events", "agents", "agents_tracking", "audit_log"} <= created
    assert migrations.current_revision(empty_database) == migrations.head_revision(empty_database)

    migrations.downgrade(empty_database, "base")
    assert tables(empty_database) == set()
    assert migrations.current_revision(empty_database) is None

    migrations.upgrade(empty_database)
    assert tables(empty_database) == created


def test_migrations_match_the_read_table_definitions(database: Database) -> None:
    engine = create_engine(database.sqlalchemy_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"include_name": lambda name, kind, _: name != "flowledger_events"}
            )
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == []


def describe(conn: psycopg.Connection[Any], table: str) -> dict[str, Any]:
    columns = conn.execute(
        "SELECT column_name, data_type, is_nullable, column_default "
        "FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    indexes = conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE tablename = %s ORDER BY indexname", (table,)
    ).fetchall()
    options = conn.execute(
        "SELECT reloptions FROM pg_class WHERE relname = %s", (table,)
    ).fetchone()
    return {"columns": columns, "indexes": indexes, "options": options}


def test_the_event_store_tables_are_what_eventsourcing_would_create(
    pg_server: Database, database: Database
) -> None:
    reference = "es_reference_ddl"
    drop_database(pg_server, reference)
    create_database_if_missing(pg_server, reference)
    try:
        ref = pg_server.with_dbname(reference)
        datastore = PostgresDatastore(
            dbname=ref.dbname, host=ref.host, port=ref.port, user=ref.user, password=ref.password
        )
        PostgresApplicationRecorder(datastore, events_table_name="flowledger_events").create_table()
        PostgresTrackingRecorder(datastore, tracking_table_name="agents_tracking").create_table()
        datastore.close()
        with ref.connect() as expected, database.connect() as actual:
            for table in ("flowledger_events", "agents_tracking"):
                assert describe(actual, table) == describe(expected, table)
            composite = (
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = 'stored_event_uuid'::regclass ORDER BY attnum"
            )
            assert actual.execute(composite).fetchall() == expected.execute(composite).fetchall()
            migration_row = "SELECT * FROM agents_tracking WHERE application_name='__migration__'"
            assert (
                actual.execute(migration_row).fetchall()
                == expected.execute(migration_row).fetchall()
            )
    finally:
        drop_database(pg_server, reference)


def test_the_agent_analytics_are_filled_from_the_step_analytics(empty_database: Database) -> None:
    """Migration 0190 sums the step rollups of every workflow and step into the per-agent ones
    the runs projection keeps from then on."""
    migrations.upgrade(empty_database, "0180")
    day, hour = "2026-11-02 00:00+00", "2026-11-02 09:00+00"
    with psycopg.connect(empty_database.libpq_url, autocommit=True) as conn:
        for span, start in (("day", day), ("hour", hour)):
            for workflow, step, status, steps, attempts in (
                ("00000000-0000-0000-0000-000000000001", "a", "SUCCEEDED", 3, 4),
                ("00000000-0000-0000-0000-000000000002", "b", "SUCCEEDED", 2, 2),
                ("00000000-0000-0000-0000-000000000002", "b", "FAILED", 1, 3),
            ):
                conn.execute(
                    "INSERT INTO analytics_steps "
                    "VALUES (%s, %s, %s, %s, 'echo', %s, %s, %s, %s, %s)",
                    (span, start, workflow, step, status, steps, attempts, attempts - 1, 0),
                )
                conn.execute(
                    "INSERT INTO analytics_step_durations VALUES (%s, %s, %s, %s, 'echo', %s, %s)",
                    (span, start, workflow, step, 40 if status == "SUCCEEDED" else 41, steps),
                )
    migrations.upgrade(empty_database)
    with psycopg.connect(empty_database.libpq_url) as conn:
        counted = conn.execute(
            "SELECT span, agent_name, status, steps, attempts, retries FROM analytics_agent_steps "
            "ORDER BY span, status"
        ).fetchall()
        histogram = conn.execute(
            "SELECT span, agent_name, duration_bucket, steps FROM analytics_agent_step_durations "
            "ORDER BY span, duration_bucket"
        ).fetchall()
    assert counted == [
        ("day", "echo", "FAILED", 1, 3, 2),
        ("day", "echo", "SUCCEEDED", 5, 6, 4),
        ("hour", "echo", "FAILED", 1, 3, 2),
        ("hour", "echo", "SUCCEEDED", 5, 6, 4),
    ]
    assert histogram == [
        ("day", "echo", 40, 5),
        ("day", "echo", 41, 1),
        ("hour", "echo", 40, 5),
        ("hour", "echo", 41, 1),
    ]
