"""Baselines measured in the same run as the figures they are compared to."""

from __future__ import annotations

import os
import time

from flowledger.runtime.database import Database

SHAPE_TABLE = "bench_raw_events"


def raw_insert_rate(database: Database, duration_s: float, state_bytes: int = 600) -> float:
    """Single-row committed INSERTs per second, one after another on one connection, into a
    table of the event store's shape (uuid, version, topic, bytea state, bigserial position)."""
    state = os.urandom(state_bytes)
    with database.connect(autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {SHAPE_TABLE}")
        conn.execute(
            f"CREATE TABLE {SHAPE_TABLE} (originator_id uuid NOT NULL, "
            "originator_version bigint NOT NULL, topic text, state bytea, "
            "notification_id bigserial, PRIMARY KEY (originator_id, originator_version))"
        )
        conn.execute(f"CREATE UNIQUE INDEX ON {SHAPE_TABLE} (notification_id)")
        statement = (
            f"INSERT INTO {SHAPE_TABLE} (originator_id, originator_version, topic, state) "
            "VALUES (gen_random_uuid(), 1, 'bench:Event', %s)"
        )
        count = 0
        started = time.perf_counter()
        deadline = started + duration_s
        while time.perf_counter() < deadline:
            conn.execute(statement, (state,), prepare=True)
            count += 1
        elapsed = time.perf_counter() - started
        conn.execute(f"DROP TABLE {SHAPE_TABLE}")
    return count / elapsed
