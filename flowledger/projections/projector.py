"""Projections: read tables built from the event log, position kept with the rows.

A :class:`Projection` says which events it wants and how each changes its tables. A
:class:`Projector` feeds it batches from a :class:`~flowledger.eventlog.follower.Follower`: one
transaction per batch holds the row changes and the new position, written with the
``eventsourcing`` tracking recorder's own statement, so a crash at any point either keeps
both or neither. The tracking row is locked first, so a second instance of the same projector
waits, then sees the position has moved, instead of applying events twice.

A projector can also write a projection's tables in another schema, keeping its position under
another key of the same tracking table: that is how a rebuild fills fresh tables next to the
live ones (``projections/rebuild.py``, ADR 0008).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar, cast

from eventsourcing.persistence import IntegrityError, Notification, Tracking
from eventsourcing.postgres import PostgresFactory, PostgresTrackingRecorder
from sqlalchemy import Connection, Engine, MetaData, Table, delete, insert, select, text

from flowledger.eventlog.follower import PositionMoved
from flowledger.eventlog.store import APPLICATION_NAME, EventStore
from flowledger.observability.tracing import handling_event
from flowledger.projections.tables import tracking_table


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows (all with the same keys) in one ``executemany``: psycopg sends them in
    pipeline mode, without waiting for each answer. (A multi-row ``INSERT … VALUES`` was
    slower: SQLAlchemy compiles it anew for every number of rows.)"""
    if rows:
        conn.execute(insert(table), list(rows))


class Projection(ABC):
    """How some events change some read tables."""

    name: ClassVar[str]
    """Also names the tracking table, ``<name>_tracking``."""
    topic_prefixes: ClassVar[tuple[str, ...]] = ()
    """Stored-event topics this projection reads (``module:`` prefixes); empty means all."""
    tables: ClassVar[tuple[Table, ...]]
    pipelined: ClassVar[bool] = False
    """True when :meth:`apply` and :meth:`finish_batch` only write and never read a statement's
    result (rows or row count): the batch's statements are then sent in psycopg's pipeline
    mode, without waiting for each answer (see :meth:`Projector.apply_batch`)."""

    def wants(self, topic: str) -> bool:
        return not self.topic_prefixes or topic.startswith(self.topic_prefixes)

    @abstractmethod
    def apply(self, conn: Connection, event: Any, position: int) -> None:
        """Change the read tables for one event (or note the change for :meth:`finish_batch`)."""

    def start_batch(self) -> None:  # noqa: B027  (a hook: most projections need none)
        """A batch begins: forget changes noted for a batch that did not finish (rolled back).

        A projection that notes changes keeps them on itself, so an instance serves one
        projector (as :func:`~flowledger.projections.registry.all_projections` makes them)."""

    def finish_batch(self, conn: Connection) -> None:  # noqa: B027  (a hook, as above)
        """Write the changes :meth:`apply` noted, in the batch's transaction, before its
        position is saved. Writing a batch's rows in a few statements instead of one or more
        per event is where a projection's throughput comes from (round trips, not SQL)."""


class AppendOnlyProjection(Projection):
    """A projection that adds one row per event to its one table (a log): the batch's rows are
    inserted together when the batch finishes."""

    def __init__(self) -> None:
        self._rows: list[dict[str, Any]] = []

    @abstractmethod
    def row(self, event: Any, position: int) -> dict[str, Any]:
        """The event's row."""

    def start_batch(self) -> None:
        self._rows = []

    def apply(self, conn: Connection, event: Any, position: int) -> None:
        self._rows.append(self.row(event, position))

    def finish_batch(self, conn: Connection) -> None:
        insert_rows(conn, self.tables[0], self._rows)
        self._rows = []


class Projector:
    """Applies batches of events to one projection; a follower's batch handler.

    ``schema``: write the projection's tables in this schema instead of the default one
    (SQLAlchemy's ``schema_translate_map``). ``tracking_key``: the tracking row's
    ``application_name``. ``trace_events``: one span per applied event, in the trace of the
    request that caused it (off for rebuilds, which replay history).
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
    ) -> None:
        self.projection = projection
        self.name = projection.name
        self.store = store
        self.tracking_key = tracking_key
        self.trace_events = trace_events
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

    def position(self) -> int | None:
        position = self.recorder.max_tracking_id(self.tracking_key)
        return None if position is None else int(position)

    def handle(self, batch: Sequence[Notification]) -> None:
        with self.engine.begin() as conn:
            self.apply_batch(conn, batch)

    def apply_batch(self, conn: Connection, batch: Sequence[Notification]) -> None:
        """Apply the batch and save its last position, in ``conn``'s transaction."""
        if self.schema is not None:  # plain-text SQL in a projection finds the copies too
            conn.execute(text(f'SET LOCAL search_path TO "{self.schema}", public'))
        current = conn.execute(
            select(self.tracking.c.notification_id)
            .where(self.tracking.c.application_name == self.tracking_key)
            .with_for_update()
        ).scalar_one_or_none()
        if current is not None and current >= batch[0].id:
            raise PositionMoved(self.name)
        self.projection.start_batch()
        with self._pipeline(conn):
            for notification in batch:
                if not self.projection.wants(notification.topic):
                    continue
                event = self.store.decode(notification)
                if self.trace_events:
                    with handling_event(f"project {self.name}", event, position=notification.id):
                        self.projection.apply(conn, event, notification.id)
                else:
                    self.projection.apply(conn, event, notification.id)
            self.projection.finish_batch(conn)
        self._save_position(conn, batch[-1].id)

    def _pipeline(self, conn: Connection) -> AbstractContextManager[object]:
        """psycopg's pipeline mode for a projection that never reads results: statements go
        out without waiting for each answer, so a batch costs about one round trip instead
        of one per statement (what held the runs projection back while other projectors kept
        the server busy). Leaving the block waits for every answer and raises the first
        error, so the batch's transaction rolls back as before."""
        if not self.projection.pipelined:
            return nullcontext()
        driver_connection = conn.connection.driver_connection
        assert driver_connection is not None
        return cast(AbstractContextManager[object], driver_connection.pipeline())

    def _save_position(self, conn: Connection, position: int) -> None:
        driver_connection = conn.connection.driver_connection
        assert driver_connection is not None
        try:
            with driver_connection.cursor() as cursor:
                self.recorder._insert_tracking(
                    cast(Any, cursor), Tracking(self.tracking_key, position)
                )
        except IntegrityError as error:  # another instance inserted the first position
            raise PositionMoved(self.name) from error

    def reset(self) -> None:
        """Empty the tables and forget the position, so the next run replays from zero."""
        with self.engine.begin() as conn:
            for table in self.projection.tables:
                conn.execute(delete(table))
            conn.execute(
                delete(self.tracking).where(self.tracking.c.application_name == self.tracking_key)
            )
