"""Rebuilding a projection from the event store while queries keep reading the live tables.

How (ADR 0008):

1. **Prepare** a fresh schema ``flowledger_rebuild_<name>`` holding a copy of each of the
   projection's tables, made by ``CREATE TABLE … (LIKE public.<table> INCLUDING ALL EXCLUDING
   INDEXES)`` (columns, defaults, checks, comments), with the storage options, the primary and
   unique keys and the foreign keys of the live table under their live names.
2. **Replay** every event from position zero into the copies, through the path the live
   projections take (:class:`~flowledger.projections.host.ProjectionHost`: one read and one
   decoding of each batch for every projection rebuilt together, rows written with ``COPY``),
   with projectors whose tables are translated to that schema. Their position is a second row,
   ``flowledger.rebuild``, of each projection's live tracking table, written with the library's
   statement in the same transaction as the rows: a batch is all or nothing, and memory stays
   flat however many events there are. Then the other indexes are built (a sort each, instead of
   one index insertion per row during the replay), with their live names and definitions, and
   the copies analysed.
3. **Swap**, in one transaction: lock the live tracking table (the live projector pauses at
   its next batch; a batch in flight finishes first), lock the live tables (queries wait a
   moment instead of failing), apply the events that arrived since, drop the live tables,
   move the copies into ``public``, set the live position to the copy's, drop the schema,
   commit. Queries that waited now read the new tables; the live projector finds its position
   moved and carries on from there. If a lock is not granted in ``lock_timeout_s`` (a long
   query), the transaction rolls back, nothing changed, and the swap is tried again.

A rebuild that dies leaves the live tables untouched; the next rebuild starts afresh.
:func:`rebuild_projections` rebuilds several projections with one replay, then swaps each in
turn (each swap is atomic for that projection's tables).
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

from flowledger.eventlog.follower import PositionMoved
from flowledger.eventlog.lag import REBUILD_KEY
from flowledger.eventlog.reader import LogReader
from flowledger.eventlog.store import APPLICATION_NAME, EventStore
from flowledger.observability import metrics
from flowledger.projections.host import ProjectionHost
from flowledger.projections.projector import Projection, Projector
from flowledger.projections.settings import BATCH_SIZE

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
        batch_size: int = BATCH_SIZE,
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
                self.finish()
                attempts = self.swap()
            except BaseException:
                metrics.REBUILDS.labels(self.name, "failed").inc()
                raise
            finally:
                self._unlock(guard)
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
        """Take the rebuild's session lock on ``guard``. The guard sits idle while the replay
        works on other connections, for longer than the server's ``idle_session_timeout`` our
        sessions get (the connection budget, ADR 0013): it is switched off for this session
        until :meth:`_unlock`, or the server would close it (and drop the lock) mid-rebuild."""
        guard.execute(text("SET idle_session_timeout = 0"))
        got = guard.execute(
            text("SELECT pg_try_advisory_lock(:k1, hashtext(:k2))"), self._key()
        ).scalar_one()
        if not got:
            guard.execute(text("RESET idle_session_timeout"))
        guard.commit()
        if not got:
            raise RebuildError(f"a rebuild of {self.name} is already running")

    def _unlock(self, guard: Connection) -> None:
        guard.execute(text("SELECT pg_advisory_unlock(:k1, hashtext(:k2))"), self._key())
        guard.execute(text("RESET idle_session_timeout"))
        guard.commit()

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
        """The table without its indexes, but with the keys the replay looks rows up by
        (primary and unique constraints, under their live names)."""
        live, fresh = _qualified(LIVE_SCHEMA, table), _qualified(self.schema, table)
        conn.execute(text(f"CREATE TABLE {fresh} (LIKE {live} INCLUDING ALL EXCLUDING INDEXES)"))
        options = conn.execute(
            text("SELECT reloptions FROM pg_class WHERE oid = to_regclass(:t)"),
            {"t": f"{LIVE_SCHEMA}.{table}"},
        ).scalar()
        if options:
            conn.execute(text(f"ALTER TABLE {fresh} SET ({', '.join(options)})"))
        keys = conn.execute(
            text(
                "SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint "
                "WHERE contype IN ('p', 'u', 'x') AND conrelid = to_regclass(:t) ORDER BY conname"
            ),
            {"t": f"{LIVE_SCHEMA}.{table}"},
        ).all()
        for key in keys:
            conn.execute(
                text(f"ALTER TABLE {fresh} ADD CONSTRAINT {_q(key.conname)} {key.definition}")
            )

    def _copy_indexes(self, conn: Connection, table: str) -> None:
        """The live table's other indexes, on the copy, with their live names."""
        live = conn.execute(
            text(
                "SELECT i.relname AS name, pg_get_indexdef(x.indexrelid) AS definition "
                "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                "WHERE x.indrelid = to_regclass(:t) AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) ORDER BY 1"
            ),
            {"t": f"{LIVE_SCHEMA}.{table}"},
        ).all()
        for index in live:
            match = _INDEX_DEF.match(index.definition)
            if match is None:
                raise RebuildError(f"cannot read the definition of index {index.name}")
            unique = "UNIQUE " if match["unique"] else ""
            conn.execute(
                text(
                    f"CREATE {unique}INDEX {_q(index.name)} ON "
                    f"{_qualified(self.schema, table)} {match['rest']}"
                )
            )
        if {k: len(v) for k, v in _indexes(conn, LIVE_SCHEMA, table).items()} != {
            k: len(v) for k, v in _indexes(conn, self.schema, table).items()
        }:
            raise RebuildError(f"the copy of {table} does not have the same indexes")

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
        """Replay from this copy's position to the head (zero, the first time)."""
        replay_together([self], self.batch_size, self._progress)

    def finish(self) -> None:
        """Build the indexes the replay went without, then analyse the copies."""
        with self.engine.begin() as conn:
            for table in self.tables:
                self._copy_indexes(conn, table)
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in self.tables:
                conn.execute(text(f"ANALYZE {_qualified(self.schema, table)}"))

    def _advanced(self, batch: Sequence[Any], phase: str) -> None:
        self._count(batch)
        self._progress(phase)

    def _count(self, batch: Sequence[Any]) -> None:
        self.position = batch[-1].id
        self.events += len(batch)
        metrics.REBUILD_EVENTS.labels(self.name).inc(len(batch))

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


def replay_together(
    rebuilds: Sequence[Rebuild], batch_size: int, progress: Callable[[str], None]
) -> None:
    """Replay into the copies of several rebuilds from the lowest of their positions to the
    head, each batch read and decoded once for all of them (the live projections' path)."""
    first = rebuilds[0]
    host = ProjectionHost(
        first.store, first.engine, [r.projector for r in rebuilds], name="rebuild"
    )
    reader = LogReader(first.store)
    bulk: list[Rebuild] = []
    try:
        position = host.position()
        # From zero into empty tables: in bulk, what a projection leaves for the end is done
        # once the log is replayed (a later pass, for what was appended meanwhile, is not).
        bulk = [r for r in rebuilds if not r.projector.known]
        for rebuild in bulk:
            rebuild.projection.bulk = True
        while batch := reader.read(position, batch_size):
            try:
                host.handle(batch)
            except PositionMoved:  # a copy was not where it said (another rebuild?): re-read
                position = host.position()
                continue
            position = batch[-1].id
            for rebuild in rebuilds:
                rebuild._count(batch)
            progress("replay")
            if len(batch) < batch_size:
                break
        for rebuild in bulk:
            with rebuild.projector.transaction() as conn:
                rebuild.projection.replayed(conn)
    finally:
        for rebuild in bulk:
            rebuild.projection.bulk = False
        host.close()
    for rebuild in rebuilds:
        rebuild.position = rebuild.projector.position()


def rebuild_projections(
    engine: Engine,
    store: EventStore,
    projections: Sequence[Projection],
    *,
    batch_size: int = 5000,
    lock_timeout_s: float = 5.0,
    on_progress: ProgressCallback | None = None,
) -> list[RebuildResult]:
    """Rebuild several projections with one replay of the log, then swap each in (see the
    module's doc); a result per projection."""
    started = time.monotonic()
    rebuilds = [
        Rebuild(
            engine,
            store,
            projection,
            batch_size=batch_size,
            lock_timeout_s=lock_timeout_s,
            on_progress=on_progress,
        )
        for projection in projections
    ]
    label = ", ".join(r.name for r in rebuilds)
    replayed = 0

    def together(phase: str) -> None:
        nonlocal replayed
        replayed = rebuilds[0].events
        if on_progress is not None:
            position = min(r.position or 0 for r in rebuilds)
            on_progress(
                RebuildProgress(
                    projection=label,
                    position=position,
                    head=max(store.head(), position),
                    events=replayed,
                    phase=phase,
                )
            )

    results: list[RebuildResult] = []
    with engine.connect() as guard:
        locked: list[Rebuild] = []
        try:
            for rebuild in rebuilds:
                rebuild._lock(guard)
                locked.append(rebuild)
            for rebuild in rebuilds:
                rebuild.prepare()
            replay_together(rebuilds, batch_size, together)
            for rebuild in rebuilds:
                rebuild.finish()
                rebuild.replay()  # what was appended meanwhile
                attempts = rebuild.swap()
                metrics.REBUILDS.labels(rebuild.name, "swapped").inc()
                rebuild._progress("done")
                results.append(
                    RebuildResult(
                        projection=rebuild.name,
                        position=rebuild.position or 0,
                        events=rebuild.events,
                        seconds=time.monotonic() - started,
                        swap_attempts=attempts,
                    )
                )
        except BaseException:
            for rebuild in rebuilds[len(results) :]:
                metrics.REBUILDS.labels(rebuild.name, "failed").inc()
            raise
        finally:
            for rebuild in locked:
                rebuild._unlock(guard)
    return results


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
    batch_size: int = 5000,
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
