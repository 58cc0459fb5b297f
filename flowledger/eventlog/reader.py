"""Reading stored events in global order, for followers: the query the event store's recorder
runs (``select_notifications``), with rows fetched in PostgreSQL's binary format as tuples
(no hex decoding of the state, no dictionary per row). Connections come from the store's pool
and its errors are the store's, so the followers' failure policy sees what it always saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from eventsourcing.persistence import Notification
from psycopg.rows import tuple_row

from flowledger.eventlog.store import EVENTS_TABLE, EventStore

_SELECT: Final = (
    "SELECT notification_id, originator_id, originator_version, topic, state FROM {table} "
)
_AFTER: Final = "WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
_BETWEEN: Final = (
    "WHERE notification_id > %s AND notification_id <= %s ORDER BY notification_id LIMIT %s"
)


class LogReader:
    def __init__(self, store: EventStore) -> None:
        self._datastore = store.application_recorder.datastore
        schema = self._datastore.schema.replace('"', '""')
        select = _SELECT.format(table=f'"{schema}".{EVENTS_TABLE}')
        self._after = select + _AFTER
        self._between = select + _BETWEEN

    def read(self, after: int | None, limit: int, until: int | None = None) -> list[Notification]:
        """Up to ``limit`` events after position ``after`` (from the start when None), and
        not after ``until`` when given, in position order."""
        query, params = (
            (self._after, (after or 0, limit))
            if until is None
            else (self._between, (after or 0, until, limit))
        )
        with (
            self._datastore.get_connection() as conn,
            conn.cursor(binary=True, row_factory=tuple_row) as cursor,
        ):
            cursor.execute(query, params, prepare=True)
            rows: Sequence[tuple[int, object, int, str, bytes]] = cursor.fetchall()
        return [_notification(*row) for row in rows]


def _notification(
    position: int, originator_id: object, version: int, topic: str, state: bytes
) -> Notification:
    """A notification, made as the library's frozen dataclass would make it, without its
    five guarded attribute writes (a follower makes one per event)."""
    notification = object.__new__(Notification)
    object.__setattr__(
        notification,
        "__dict__",
        {
            "originator_id": originator_id,
            "originator_version": version,
            "topic": topic,
            "state": state,
            "id": position,
        },
    )
    return notification
