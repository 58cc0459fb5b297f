"""Projections: read tables built from the event log, position kept with the rows.

A :class:`Projection` says which events it wants and how each changes its tables. A
:class:`Projector` applies a batch of events to one projection in one transaction that holds
the row changes and the new position, written with the ``eventsourcing`` tracking recorder's own
statement, so a crash at any point either keeps both or neither. The tracking row is locked
first, so a second instance of the same projector waits, then applies only what the first one
did not (nothing is applied twice).

Batches come from a :class:`~flowledger.projections.host.ProjectionHost`, which reads and decodes
the log once for every projection of a process, or from a follower of the projector's own
(:meth:`Projector.handle`). A projection's batch has three steps: :meth:`Projection.prepare`
reads what the events will change (in one go), :meth:`Projection.apply` folds each event, and
:meth:`Projection.finish_batch` writes the changes set-based (``COPY``, a few statements).

A projector can also write a projection's tables in another schema, keeping its position under
another key of the same tracking table: that is how a rebuild fills fresh tables next to the
live ones (``projections/rebuild.py``, ADR 0008).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ClassVar, cast

import psycopg
from eventsourcing.persistence import Notification
from eventsourcing.postgres import PostgresFactory, PostgresTrackingRecorder
from psycopg import sql
from sqlalchemy import Connection, Engine, MetaData, Table, delete, insert

from flowledger.eventlog.decoding import EventDecoder
from flowledger.eventlog.follower import PositionMoved
from flowledger.eventlog.store import APPLICATION_NAME, EventStore
from flowledger.observability.tracing import handling_event, recording
from flowledger.projections.rowsets import copy_rows, driver
from flowledger.projections.tables import tracking_table
from flowledger.runtime.database import composed

Applied = tuple[int, Any]
"""An event to apply and its position in the log."""


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows (all with the same keys) in one ``executemany`` (psycopg pipelines it), for
    projections that insert new rows and update others event by event rather than fold a
    batch into a :class:`~flowledger.projections.rowsets.RowSet`."""
    if rows:
        conn.execute(insert(table), list(rows))


TRANSACTION_SETTINGS: Mapping[str, str] = {"synchronous_commit": "off", "jit": "off"}
"""Every projector transaction: its commit does not wait for the WAL to reach the disk (a
crash of the server can only lose whole batches, rows and position together, which are applied
again), and no JIT compilation for the batch's statements (milliseconds of compiling for
statements that run in less)."""


@contextmanager
def batch_transaction(
    engine: Engine, schema: str | None = None, settings: Mapping[str, str] | None = None
) -> Iterator[Connection]:
    """A projector's transaction (:data:`TRANSACTION_SETTINGS`, and ``settings``: a
    projection's own); ``schema`` first in the ``search_path``, so that plain-text SQL of a
    projection finds a rebuild's copies too."""
    with locked_batch(engine, schema, (), settings) as (conn, _):
        yield conn


@contextmanager
def locked_batch(
    engine: Engine,
    schema: str | None,
    projectors: Sequence[Projector],
    extra: Mapping[str, str] | None = None,
) -> Iterator[tuple[Connection, list[int]]]:
    """:func:`batch_transaction` with the tracking rows of ``projectors`` locked in it, and
    their positions: the settings (theirs too, :attr:`Projection.settings`) and the locks go
    with the BEGIN, in one round trip."""
    wanted = dict(TRANSACTION_SETTINGS)
    for projector in projectors:
        wanted.update(projector.projection.settings)
    wanted.update(extra or {})
    if schema is not None:
        wanted["search_path"] = f'"{schema}", public'
    with engine.begin() as conn:
        raw = driver(conn)
        # Sent with the BEGIN: one round trip, not two; the settings in one statement and the
        # locks in another, not one statement each (a live batch of one event locks every
        # projection's row: statements, not rows, were most of its cost in the database).
        with raw.pipeline():
            raw.execute(_settings_statement(wanted), list(wanted.values()), prepare=True)
            locks = _lock_all(raw, projectors) if projectors else None
        yield conn, _positions_of(raw, locks, projectors)


def _settings_statement(settings: Mapping[str, str]) -> bytes:
    """``SET LOCAL`` of each setting, as one statement (``set_config(name, value, true)``)."""
    calls = ", ".join(f"set_config('{name}', %s, true)" for name in settings)
    return f"SELECT {calls}".encode()


def _lock_all(raw: psycopg.Connection[Any], projectors: Sequence[Projector]) -> psycopg.Cursor[Any]:
    """Send the statement that locks the tracking rows of ``projectors`` and reads their
    positions, in their order (one scalar sub-select ``FOR UPDATE`` each, evaluated in turn),
    on a cursor of its own."""
    statement = b"SELECT " + b", ".join(b"(" + p._lock_statement + b")" for p in projectors)
    cursor = raw.cursor()
    cursor.execute(statement, [p.tracking_key for p in projectors], prepare=True)
    return cursor


def _positions_of(
    raw: psycopg.Connection[Any],
    cursor: psycopg.Cursor[Any] | None,
    projectors: Sequence[Projector],
) -> list[int]:
    """The positions :func:`_lock_all` read (0: none saved yet).

    A projection with no tracking row yet is locked again in a statement of its own: the one
    statement read every row with the snapshot it started with, so a row another host created
    while this one waited for an earlier row's lock was not seen (nor locked); a statement of
    its own sees it, and waits for it, as one statement per row did."""
    if cursor is None:
        return []
    with cursor:
        row = cursor.fetchone()
    assert row is not None and len(row) == len(projectors)
    return [
        int(value) if value is not None else _position_of(projector.lock_position(raw))
        for projector, value in zip(projectors, row, strict=True)
    ]


class Projection:
    """How some events change some read tables."""

    name: ClassVar[str]
    """Also names the tracking table, ``<name>_tracking``."""
    topic_prefixes: ClassVar[tuple[str, ...]] = ()
    """Stored-event topics this projection reads (``module:`` prefixes); empty means all."""
    tables: ClassVar[tuple[Table, ...]]
    settings: ClassVar[Mapping[str, str]] = {}
    """Settings of its batches' transactions (``SET LOCAL``, beside
    :data:`TRANSACTION_SETTINGS`). A small batch that every projection applies in one
    transaction has the settings of them all."""

    def wants(self, topic: str) -> bool:
        return not self.topic_prefixes or topic.startswith(self.topic_prefixes)

    def start_batch(self) -> None:
        """A batch begins: forget changes noted for a batch that did not finish (rolled back).

        A projection that notes changes keeps them on itself, so an instance serves one
        projector (as :func:`~flowledger.projections.registry.all_projections` makes them)."""

    def resume(self, position: int) -> None:
        """The batch applies the events after ``position``, the position its transaction
        locked (called after :meth:`start_batch`). A projection that keeps rows from one batch
        to the next checks here that they are still what the tables hold."""

    def written(self, position: int, since: int | None = None) -> None:
        """The batch's changes are written and ``position`` is saved in its transaction (which
        may still fail to commit: the next :meth:`resume` says whether it did). ``since``: the
        position was only moved there from ``since``, with nothing to apply."""

    def abandoned(self) -> None:
        """The transaction of the batch (or of the positions) failed: what :meth:`written`
        said does not hold."""

    def prepare(self, conn: Connection, events: Sequence[Applied]) -> None:
        """Read, in a few statements, what :meth:`apply` will need for these events (the rows
        they change), before any is applied."""

    def apply(self, conn: Connection, event: Any, position: int) -> None:
        """Change the read tables for one event (or note the change for :meth:`finish_batch`)."""
        raise NotImplementedError

    def finish_batch(self, conn: Connection) -> None:
        """Write the changes :meth:`apply` noted, in the batch's transaction, before its
        position is saved. Writing a batch's rows in a few statements instead of one or more
        per event is where a projection's throughput comes from (round trips, not SQL)."""

    bulk: bool = False
    """Set while a rebuild replays the whole log into empty tables: the projection may leave
    work that is cheaper done once over all rows to :meth:`replayed`."""

    def replayed(self, conn: Connection) -> None:
        """A bulk replay into empty tables has ended: do, in ``conn``'s transaction (the fresh
        tables first in its search path), what :attr:`bulk` left for the end."""


class AppendOnlyProjection(Projection):
    """A projection that adds one row per event to its one table (a log): the batch's rows are
    copied in together (``COPY``) when the batch finishes."""

    columns: ClassVar[tuple[str, ...]]
    """The table's columns, in the order :meth:`record` gives their values."""

    def __init__(self) -> None:
        self._records: list[tuple[Any, ...]] = []

    def record(self, event: Any, position: int) -> tuple[Any, ...]:
        """The event's row, its values in :attr:`columns` order (JSON as text)."""
        raise NotImplementedError

    def start_batch(self) -> None:
        self._records = []

    def apply(self, conn: Connection, event: Any, position: int) -> None:
        self._records.append(self.record(event, position))

    def finish_batch(self, conn: Connection) -> None:
        if self._records:
            copy_rows(conn, self.tables[0], self.columns, self._records)
        self._records = []


def advance_locked(
    conn: Connection,
    projectors: Sequence[Projector],
    currents: Sequence[int],
    *,
    after: int,
    last: int,
    applied: Sequence[Projector] = (),
) -> list[int]:
    """Move the positions of projections with nothing to apply in a batch (the log's events
    after ``after`` up to ``last``) to ``last``, in ``conn``'s transaction, where their
    tracking rows are locked at ``currents`` (:func:`locked_batch`): what
    :meth:`Projector.apply_events` does for each with no events, the saves sent together for
    all of them (one statement, not one per projection). ``applied``: projections that applied
    their events up to ``last`` in this transaction without saving it
    (:meth:`Projector.apply_locked` with ``save=False``), saved in the same statement. The
    positions reached; :class:`PositionMoved` when one was reset behind ``after`` or moved by
    another instance."""
    raw = driver(conn)
    for projector, current in zip(projectors, currents, strict=True):
        if current < after:
            raise PositionMoved(projector.name)
    behind = [
        (p, current) for p, current in zip(projectors, currents, strict=True) if current < last
    ]
    # In name order, as the rows were locked: two hosts creating rows never wait on each other
    # in opposite orders.
    saving = sorted([*applied, *(p for p, _ in behind)], key=lambda p: p.name)
    if saving:
        for projector, was_saved in zip(saving, _save_all(raw, saving, last), strict=True):
            if not was_saved:  # a higher position was saved meanwhile
                raise PositionMoved(projector.name)
        for projector in applied:
            projector.projection.written(last)
        for projector, current in behind:
            projector.projection.written(last, since=current)
    return [max(current, last) for current in currents]


def _save_all(
    raw: psycopg.Connection[Any], projectors: Sequence[Projector], position: int
) -> list[bool]:
    """Save ``position`` for each of ``projectors`` with the library's statement, all of them
    in one statement (each save a ``WITH`` query of it, sharing the parameters); whether each
    was saved (not when a higher position was). Projectors under different tracking keys are
    saved one statement each."""
    keys = {p.tracking_key for p in projectors}
    if len(keys) > 1:
        with raw.pipeline():
            cursors = [p.send_position(raw, position) for p in projectors]
        return [_saved(cursor) for cursor in cursors]
    saves = b", ".join(b"s%d AS (%s)" % (i, p._save_statement) for i, p in enumerate(projectors))
    counts = b", ".join(b"(SELECT count(*) FROM s%d)" % i for i in range(len(projectors)))
    with raw.cursor() as cursor:
        cursor.execute(
            b"WITH " + saves + b" SELECT " + counts,
            {"application_name": keys.pop(), "notification_id": position},
            prepare=True,
        )
        row = cursor.fetchone()
    assert row is not None
    return [bool(count) for count in row]


def _position_of(cursor: psycopg.Cursor[Any]) -> int:
    """The position :meth:`Projector.lock_position` read (0: none saved yet)."""
    with cursor:
        row = cursor.fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


def _saved(cursor: psycopg.Cursor[Any]) -> bool:
    """Whether :meth:`Projector.send_position` saved its position."""
    with cursor:
        return cursor.fetchone() is not None


class Projector:
    """Applies batches of events to one projection, each in one transaction with its position.

    ``schema``: write the projection's tables in this schema instead of the default one
    (SQLAlchemy's ``schema_translate_map``, and the ``search_path`` for plain SQL).
    ``tracking_key``: the tracking row's ``application_name``. ``trace_events``: one span per
    applied event, in the trace of the request that caused it, when spans are recorded (off for
    rebuilds, which replay history).
    """

    def __init__(
        self,
        projection: Projection,
        store: EventStore,
        engine: Engine,
        *,
        schema: str | None = None,
        tracking_key: str = APPLICATION_NAME,
        trace_events: bool = True,
        decoder: EventDecoder | None = None,
    ) -> None:
        self.projection = projection
        self.name = projection.name
        self.store = store
        self.tracking_key = tracking_key
        self.trace_events = trace_events
        self.decoder = decoder or EventDecoder(store.mapper)
        factory = cast(PostgresFactory, store.factory)
        self.recorder = PostgresTrackingRecorder(
            factory.datastore, tracking_table_name=f"{projection.name}_tracking"
        )
        # The tracking table always lives where the library's statement writes (``public``),
        # whatever schema the projection's own tables are written to.
        self.tracking = tracking_table(projection.name).to_metadata(
            MetaData(), schema=factory.datastore.schema
        )
        self.schema = schema
        self.engine = (
            engine
            if schema is None
            else engine.execution_options(schema_translate_map={None: schema})
        )
        self.known: int = 0
        """The position this projector last read or saved (0: nothing applied yet)."""
        self._lock_statement = composed(
            sql.SQL(
                "SELECT notification_id FROM {}.{} WHERE application_name = %s FOR UPDATE"
            ).format(sql.Identifier(factory.datastore.schema), sql.Identifier(self.tracking.name))
        )
        self._save_statement = composed(self.recorder.insert_tracking_statement)

    def wants(self, topic: str) -> bool:
        return self.projection.wants(topic)

    def position(self) -> int | None:
        position = self.recorder.max_tracking_id(self.tracking_key)
        self.known = int(position or 0)
        return None if position is None else int(position)

    # ------------------------------------------------------------------ a follower of its own
    def handle(self, batch: Sequence[Notification]) -> None:
        """Decode the batch and apply it (the batch handler of a follower of its own)."""
        events = [(n.id, self.decoder.decode(n)) for n in batch if self.wants(n.topic)]
        self.commit(events, after=self.known, last=batch[-1].id)

    def commit(self, events: Sequence[Applied], *, after: int, last: int) -> bool:
        """:meth:`apply_events` in a transaction of its own; whether anything was written."""
        try:
            with locked_batch(self.engine, self.schema, [self]) as (conn, [current]):
                reached = self.apply_locked(conn, events, current, after=after, last=last)
        except BaseException:
            self.projection.abandoned()
            raise
        self.known = reached
        return reached == last

    def apply_batch(self, conn: Connection, batch: Sequence[Notification]) -> int:
        """Apply stored events after this projector's position in ``conn``'s transaction; the
        position reached (this projector's :attr:`known` position moves once ``conn``
        commits, which is the caller's to note)."""
        events = [(n.id, self.decoder.decode(n)) for n in batch if self.wants(n.topic)]
        return self.apply_events(conn, events, after=self.known, last=batch[-1].id)

    # ------------------------------------------------------------------ the batch
    def transaction(self) -> AbstractContextManager[Connection]:
        """A transaction for one batch (committed when the block ends without an error)."""
        return batch_transaction(self.engine, self.schema, self.projection.settings)

    def apply_events(
        self, conn: Connection, events: Sequence[Applied], *, after: int, last: int
    ) -> int:
        """Apply ``events`` (the ones this projection wants among the log's events after
        position ``after`` up to ``last``) and save ``last`` as the position, in ``conn``'s
        transaction; the position the projection is at once it commits.

        The tracking row is locked first. If another instance got further meanwhile, only the
        events after its position are applied; if the saved position is behind ``after`` (it
        was reset), the events in between are not in this batch: :class:`PositionMoved`.
        """
        current = _position_of(self.lock_position(driver(conn)))
        return self.apply_locked(conn, events, current, after=after, last=last)

    def apply_locked(
        self,
        conn: Connection,
        events: Sequence[Applied],
        current: int,
        *,
        after: int,
        last: int,
        save: bool = True,
    ) -> int:
        """:meth:`apply_events` once the tracking row is locked, at ``current``. ``save``
        False: the position is left to the caller, who saves it with others'
        (:func:`advance_locked`'s ``applied``) when this returns ``last`` from below it."""
        if current < after:
            raise PositionMoved(self.name)
        if current >= last:
            return current
        if current > after:
            events = [applied for applied in events if applied[0] > current]
        projection = self.projection
        projection.start_batch()
        projection.resume(current)
        if events:
            projection.prepare(conn, events)
            if self.trace_events and recording():
                for position, event in events:
                    with handling_event(f"project {self.name}", event, position=position):
                        projection.apply(conn, event, position)
            else:
                for position, event in events:
                    projection.apply(conn, event, position)
            projection.finish_batch(conn)
        if save:
            self._save_position(conn, last)
            projection.written(last)
        return last

    def _save_position(self, conn: Connection, position: int) -> None:
        if not _saved(self.send_position(driver(conn), position)):
            raise PositionMoved(self.name)  # another instance saved a higher one

    # ------------------------------------------------------------------ positions only
    def lock_position(self, raw: psycopg.Connection[Any]) -> psycopg.Cursor[Any]:
        """Send the statement that locks this projection's tracking row and reads its position,
        on a cursor of its own (its result is read with the statements sent after it in a
        pipeline: :func:`locked_batch`)."""
        cursor = raw.cursor()
        cursor.execute(self._lock_statement, (self.tracking_key,), prepare=True)
        return cursor

    def send_position(self, raw: psycopg.Connection[Any], position: int) -> psycopg.Cursor[Any]:
        """Send the library's statement that saves ``position`` (the tracking recorder's
        upsert), on a cursor of its own; it returns no row when a higher position is saved."""
        cursor = raw.cursor()
        cursor.execute(
            self._save_statement,
            {"application_name": self.tracking_key, "notification_id": position},
            prepare=True,
        )
        return cursor

    def reset(self) -> None:
        """Empty the tables and forget the position, so the next run replays from zero."""
        with self.engine.begin() as conn:
            for table in self.projection.tables:
                conn.execute(delete(table))
            conn.execute(
                delete(self.tracking).where(self.tracking.c.application_name == self.tracking_key)
            )
        self.known = 0
