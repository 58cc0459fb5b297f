"""Rebuilding a projection from the event store while queries keep reading the live tables.

How (ADR 0008):

1. **Prepare** a fresh schema ``flowledger_rebuild_<name>`` holding a copy of each of the
   projection's tables, made by ``CREATE TABLE … (LIKE public.<table> INCLUDING ALL)`` (columns,
   defaults, constraints, indexes, comments), with the storage options and the foreign keys
   copied and every index renamed to its live twin's name, so the tables swapped in are what
   the migrations made.
2. **Replay** every event from position zero into the copies with an ordinary
   :class:`~flowledger.projections.projector.Projector` whose tables are translated to that
   schema. Its position is a second row, ``flowledger.rebuild``, of the projection's live
   tracking table, written with the library's statement in the same transaction as the rows:
   a batch is all or nothing, and memory stays flat however many events there are.
3. **Swap**, in one transaction: lock the live tracking table (the live projector pauses at
   its next batch; a batch in flight finishes first), lock the live tables (queries wait a
   moment instead of failing), apply the events that arrived since, drop the live tables,
   move the copies into ``public``, set the live position to the copy's, drop the schema,
   commit. Queries that waited now read the new tables; the live projector finds its position
   moved and carries on from there. If a lock is not granted in ``lock_timeout_s`` (a long
   query), the transaction rolls back, nothing changed, and the swap is tried again.

A rebuild that dies leaves the live tables untouched; the next rebuild starts afresh.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy.exc
from sqlalchemy import Connection, Engine, text
from sqlalchemy.dialects.postgresql import insert

from flowledger.eventlog.lag import REBUILD_KEY
from flowledger.eventlog.reader import LogReader
from flowledger.eventlog.store import APPLICATION_NAME, EventStore
from flowledger.observability import metrics
from flowledger.projections.projector import Projection, Projector

log = logging.getLogger(__name__)

LIVE_SCHEMA: Final = "public"
SCHEMA_PREFIX: Final = "flowledger_rebuild_"
LOCK_NOT_AVAILABLE: Final = "55P03"
_INDEX_DEF = re.compile(r"^CREATE (?P<unique>UNIQUE )?INDEX \S+ ON (?:ONLY )?\S+ (?P<rest>.*)$")


class RebuildError(RuntimeError):
    """The rebuild cannot go on; the live tables are unchanged."""


@dataclass(frozen=True)
class RebuildProgress:
    projection: str
    position: int
    """Position replayed up to (every event counts, relevant to the projection or not)."""
    head: int
    events: int
    """Events replayed so far by this rebuild."""
    phase: str
    """``replay``, ``swap`` or ``done``."""


@dataclass(frozen=True)
class RebuildResult:
    projection: str
    position: int
    events: int
    seconds: float
    swap_attempts: int


ProgressCallback = Callable[[RebuildProgress], None]


def rebuild_schema(projection: Projection) -> str:
    return f"{SCHEMA_PREFIX}{projection.name}"


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _qualified(schema: str, table: str) -> str:
    return f"{_q(schema)}.{_q(table)}"


class Rebuild:
    """One rebuild of one projection; :meth:`run` does it all."""

    def __init__(
        self,
        engine: Engine,
        store: EventStore,
        projection: Projection,
        *,
        batch_size: int = 1000,
        lock_timeout_s: float = 5.0,
        swap_attempts: int = 5,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.projection = projection
        self.name = projection.name
        self.schema = rebuild_schema(projection)
        self.batch_size = batch_size
        self.lock_timeout_s = lock_timeout_s
        self.swap_attempts = swap_attempts
        self.on_progress = on_progress
        self.tables = [table.name for table in projection.tables]
        self.tracking = f"{projection.name}_tracking"
        self.projector = Projector(
            projection,
            store,
            engine,
            schema=self.schema,
            tracking_key=REBUILD_KEY,
            trace_events=False,
        )
        self.reader = LogReader(store)
        self.position: int | None = None
        self.events = 0
        self.schema_version: list[str] = []

    def run(self) -> RebuildResult:
        started = time.monotonic()
        with self.engine.connect() as guard:
            self._lock(guard)
            try:
                self.prepare()
                self.replay()
                attempts = self.swap()
            except BaseException:
                metrics.REBUILDS.labels(self.name, "failed").inc()
                raise
            finally:
                guard.execute(text("SELECT pg_advisory_unlock(:k1, hashtext(:k2))"), self._key())
                guard.commit()
        metrics.REBUILDS.labels(self.name, "swapped").inc()
        self._progress("done")
        return RebuildResult(
            projection=self.name,
            position=self.position or 0,
            events=self.events,
            seconds=time.monotonic() - started,
            swap_attempts=attempts,
        )

    def _key(self) -> dict[str, Any]:
        return {"k1": 0x466C6F77, "k2": f"rebuild:{self.name}"}

    def _lock(self, guard: Connection) -> None:
        got = guard.execute(
            text("SELECT pg_try_advisory_lock(:k1, hashtext(:k2))"), self._key()
        ).scalar_one()
        guard.commit()
        if not got:
            raise RebuildError(f"a rebuild of {self.name} is already running")

    # --- 1. prepare ------------------------------------------------------------------------
    def prepare(self) -> None:
        """A fresh schema with empty copies of the live tables (what a crash left is dropped)."""
        with self.engine.begin() as conn:
            self._check(conn)
            self.schema_version = _schema_version(conn)
            conn.execute(text(f"DROP SCHEMA IF EXISTS {_q(self.schema)} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {_q(self.schema)}"))
            conn.execute(
                text(
                    f"DELETE FROM {_qualified(LIVE_SCHEMA, self.tracking)} "  # noqa: S608
                    "WHERE application_name = :key"
                ),
                {"key": REBUILD_KEY},
            )
            for table in self.tables:
                self._copy_table(conn, table)
            for table in self.tables:
                self._copy_foreign_keys(conn, table)
        log.info("rebuild %s: fresh tables ready in schema %s", self.name, self.schema)

    def _check(self, conn: Connection) -> None:
        for table in [*self.tables, self.tracking]:
            if conn.execute(
                text("SELECT to_regclass(:t)"), {"t": f"{LIVE_SCHEMA}.{table}"}
            ).scalar():
                continue
            raise RebuildError(f"table {table} does not exist; run the migrations first")
        serial = conn.execute(
            text(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = :s AND table_name = ANY(:t) "
                "AND column_default LIKE 'nextval(%'"
            ),
            {"s": LIVE_SCHEMA, "t": self.tables},
        ).all()
        if serial:
            names = ", ".join(f"{r.table_name}.{r.column_name}" for r in serial)
            raise RebuildError(
                f"{names} take their default from a sequence owned by the live table; "
                "use an identity column or a key from the events"
            )
        referencing = conn.execute(
            text(
                "SELECT conname, conrelid::regclass::text AS source FROM pg_constraint "
                "WHERE contype = 'f' AND confrelid = ANY(CAST(:targets AS regclass[])) "
                "AND NOT conrelid = ANY(CAST(:targets AS regclass[]))"
            ),
            {"targets": [f"{LIVE_SCHEMA}.{t}" for t in self.tables]},
        ).all()
        if referencing:
            names = ", ".join(f"{r.source} ({r.conname})" for r in referencing)
            raise RebuildError(
                f"tables outside the {self.name} projection reference it: {names}; "
                "they would lose their rows' targets"
            )

    def _copy_table(self, conn: Connection, table: str) -> None:
        live, fresh = _qualified(LIVE_SCHEMA, table), _qualified(self.schema, table)
        conn.execute(text(f"CREATE TABLE {fresh} (LIKE {live} INCLUDING ALL)"))
        options = conn.execute(
            text("SELECT reloptions FROM pg_class WHERE oid = to_regclass(:t)"),
            {"t": f"{LIVE_SCHEMA}.{table}"},
        ).scalar()
        if options:
            conn.execute(text(f"ALTER TABLE {fresh} SET ({', '.join(options)})"))
        live_indexes = _indexes(conn, LIVE_SCHEMA, table)
        fresh_indexes = _indexes(conn, self.schema, table)
        if {k: len(v) for k, v in live_indexes.items()} != {
            k: len(v) for k, v in fresh_indexes.items()
        }:
            raise RebuildError(f"the copy of {table} does not have the same indexes")
        renames = [
            (fresh_name, live_name)
            for key, names in fresh_indexes.items()
            for fresh_name, live_name in zip(names, live_indexes[key], strict=True)
        ]
        # Through temporary names, in case a generated name is another index's live name.
        for number, (fresh_name, _) in enumerate(renames):
            conn.execute(
                text(
                    f"ALTER INDEX {_qualified(self.schema, fresh_name)} "
                    f"RENAME TO {_q(f'flowledger_rebuild_{number}')}"
                )
            )
        for number, (_, live_name) in enumerate(renames):
            conn.execute(
                text(
                    f"ALTER INDEX {_qualified(self.schema, f'flowledger_rebuild_{number}')} "
                    f"RENAME TO {_q(live_name)}"
                )
            )

    def _copy_foreign_keys(self, conn: Connection, table: str) -> None:
        """Foreign keys (LIKE does not copy them): ones between the projection's own tables
        point at the copies, since the copies come first in the search path."""
        keys = conn.execute(
            text(
                "SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint "
                "WHERE contype = 'f' AND conrelid = to_regclass(:t) ORDER BY conname"
            ),
            {"t": f"{LIVE_SCHEMA}.{table}"},
        ).all()
        if not keys:
            return
        conn.execute(text(f"SET LOCAL search_path = {_q(self.schema)}, {_q(LIVE_SCHEMA)}"))
        for key in keys:
            conn.execute(
                text(
                    f"ALTER TABLE {_qualified(self.schema, table)} "
                    f"ADD CONSTRAINT {_q(key.conname)} {key.definition}"
                )
            )
        conn.execute(text(f"SET LOCAL search_path = {_q(LIVE_SCHEMA)}"))

    # --- 2. replay -------------------------------------------------------------------------
    def replay(self) -> None:
        """Replay from zero into the copies, batch by batch, until a batch comes back short."""
        self.position = self.projector.position()
        while True:
            batch = self.reader.read(self.position, self.batch_size)
            if not batch:
                break
            self.projector.handle(batch)
            self._advanced(batch, "replay")
            if len(batch) < self.batch_size:
                break
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in self.tables:
                conn.execute(text(f"ANALYZE {_qualified(self.schema, table)}"))

    def _advanced(self, batch: Sequence[Any], phase: str) -> None:
        self.position = batch[-1].id
        self.events += len(batch)
        metrics.REBUILD_EVENTS.labels(self.name).inc(len(batch))
        self._progress(phase)

    def _progress(self, phase: str) -> None:
        if self.on_progress is not None:
            head = self.store.head()
            self.on_progress(
                RebuildProgress(
                    projection=self.name,
                    position=self.position or 0,
                    head=max(head, self.position or 0),
                    events=self.events,
                    phase=phase,
                )
            )

    # --- 3. swap ---------------------------------------------------------------------------
    def swap(self) -> int:
        """Swap the copies in atomically; the number of attempts it took."""
        for attempt in range(1, self.swap_attempts + 1):
            try:
                with self.projector.transaction() as conn:
                    conn.execute(text("SET LOCAL synchronous_commit TO on"))  # a one-off: durable
                    self._swap(conn)
            except sqlalchemy.exc.OperationalError as error:
                lock_timeout = getattr(error.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE
                if not lock_timeout or attempt == self.swap_attempts:
                    raise
                log.warning(
                    "rebuild %s: swap attempt %d waited too long for a lock; catching up and "
                    "trying again",
                    self.name,
                    attempt,
                )
                self.position = self.projector.position()
                self.replay()
            else:
                log.info("rebuild %s: swapped in at position %s", self.name, self.position)
                return attempt
        raise RebuildError(f"could not swap {self.name} in")  # pragma: no cover

    def _pause_live_projector(self, conn: Connection) -> None:
        """EXCLUSIVE conflicts with the ROW SHARE lock of the live projector's first statement
        (``SELECT … FOR UPDATE`` of its tracking row), so its next batch waits before touching
        any table, and a batch in flight commits first. (SHARE ROW EXCLUSIVE would let a batch
        start, lock the live tables, and deadlock with the swap.) Reads of positions (ACCESS
        SHARE) go on."""
        tracking = _qualified(LIVE_SCHEMA, self.tracking)
        conn.execute(text(f"LOCK TABLE {tracking} IN EXCLUSIVE MODE"))

    def _lock_live_tables(self, conn: Connection) -> None:
        """Queries wait from here until the commit, then read the new tables."""
        live_tables = ", ".join(_qualified(LIVE_SCHEMA, t) for t in sorted(self.tables))
        conn.execute(text(f"LOCK TABLE {live_tables} IN ACCESS EXCLUSIVE MODE"))

    def _swap(self, conn: Connection) -> None:
        self.position = self.projector.position()  # what the copies hold (after a retry too)
        conn.execute(text(f"SET LOCAL lock_timeout = '{int(self.lock_timeout_s * 1000)}ms'"))
        # The order the live projector takes them in: tracking, then tables; so no deadlock.
        self._pause_live_projector(conn)
        self._lock_live_tables(conn)
        if _schema_version(conn) != self.schema_version:
            raise RebuildError(
                f"the schema was migrated during the rebuild of {self.name} (now at "
                f"{_schema_version(conn)}); nothing was swapped: run the rebuild again"
            )
        while batch := self.reader.read(self.position, self.batch_size):
            self.projector.known = self.projector.apply_batch(conn, batch)
            self._advanced(batch, "swap")
        live_position = conn.execute(
            text(
                f"SELECT notification_id FROM {_qualified(LIVE_SCHEMA, self.tracking)} "  # noqa: S608
                "WHERE application_name = :key"
            ),
            {"key": APPLICATION_NAME},
        ).scalar()
        if live_position is not None and live_position > (self.position or 0):
            raise RebuildError(
                f"the live {self.name} projection is at {live_position}, past the rebuilt "
                f"copy at {self.position}; nothing was swapped"
            )
        for table in self.tables:
            conn.execute(text(f"DROP TABLE {_qualified(LIVE_SCHEMA, table)}"))
            conn.execute(
                text(f"ALTER TABLE {_qualified(self.schema, table)} SET SCHEMA {_q(LIVE_SCHEMA)}")
            )
        tracking = self.projector.tracking
        if self.position is not None:
            upsert = insert(tracking).values(
                application_name=APPLICATION_NAME, notification_id=self.position
            )
            conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=[tracking.c.application_name],
                    set_={"notification_id": upsert.excluded.notification_id},
                )
            )
        conn.execute(tracking.delete().where(tracking.c.application_name == REBUILD_KEY))
        conn.execute(text(f"DROP SCHEMA {_q(self.schema)}"))


def _schema_version(conn: Connection) -> list[str]:
    """The Alembic revision(s) the database is at."""
    if not conn.execute(text("SELECT to_regclass('alembic_version')")).scalar():
        return []
    return sorted(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def _indexes(conn: Connection, schema: str, table: str) -> dict[tuple[bool, str], list[str]]:
    """A table's index names by definition (unique or not, method and columns), in name order."""
    rows = conn.execute(
        text(
            "SELECT indexname, indexdef FROM pg_indexes "
            "WHERE schemaname = :s AND tablename = :t ORDER BY indexname"
        ),
        {"s": schema, "t": table},
    ).all()
    found: dict[tuple[bool, str], list[str]] = {}
    for row in rows:
        match = _INDEX_DEF.match(row.indexdef)
        if match is None:
            raise RebuildError(f"cannot read the definition of index {row.indexname}")
        key = (bool(match["unique"]), match["rest"])
        found.setdefault(key, []).append(row.indexname)
    return found


def rebuild_projection(
    engine: Engine,
    store: EventStore,
    projection: Projection,
    *,
    batch_size: int = 1000,
    lock_timeout_s: float = 5.0,
    on_progress: ProgressCallback | None = None,
) -> RebuildResult:
    """Rebuild ``projection`` from position zero and swap it in atomically (see module doc)."""
    return Rebuild(
        engine,
        store,
        projection,
        batch_size=batch_size,
        lock_timeout_s=lock_timeout_s,
        on_progress=on_progress,
    ).run()
