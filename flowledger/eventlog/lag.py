"""How far behind the event store each follower is, computed from the database.

Every follower that keeps its position in a ``<name>_tracking`` table (the ``eventsourcing``
single-row layout: ``application_name``, ``notification_id``) is found by name, so a new
follower appears here without registering anything. Lag in events is the head's position
minus the follower's; lag in seconds is the age of the oldest event it has not handled yet
(0 when it is caught up). Rebuilds in progress keep their own row (``flowledger.rebuild``) in
the same tables and are reported separately.

Used by ``/metrics`` (:class:`LagCollector`, at scrape time), ``/health/ready`` and
``flowledger projections status``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from eventsourcing.persistence import StoredEvent
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, text

from flowledger.eventlog.store import APPLICATION_NAME, EVENTS_TABLE, EventStore

log = logging.getLogger(__name__)

REBUILD_KEY: Final = f"{APPLICATION_NAME}.rebuild"
"""The tracking row a projection rebuild keeps its own position under."""
TRACKING_SUFFIX: Final = "_tracking"

_TRACKING_TABLES = text(
    "SELECT c.table_name FROM information_schema.columns c "
    "WHERE c.table_schema = current_schema() AND c.table_name LIKE '%\\_tracking' "
    "AND c.column_name IN ('application_name', 'notification_id') "
    "GROUP BY c.table_name HAVING count(*) = 2 ORDER BY c.table_name"
)
_HEAD = text(f"SELECT coalesce(max(notification_id), 0) FROM {EVENTS_TABLE}")  # noqa: S608
_NEXT_EVENT = text(
    "SELECT originator_id, originator_version, topic, state "  # noqa: S608
    f"FROM {EVENTS_TABLE} WHERE notification_id > :position "
    "ORDER BY notification_id LIMIT 1"
)


@dataclass(frozen=True)
class FollowerLag:
    name: str
    """The tracking table's name without ``_tracking``: the follower's name."""
    position: int
    lag_events: int
    lag_seconds: float | None
    """Age of the oldest event not handled yet; None when it cannot be read."""
    rebuild_position: int | None = None
    """Where a rebuild of this projection has got to, while one runs (or was left behind)."""


@dataclass(frozen=True)
class Lags:
    head: int
    followers: list[FollowerLag]


def tracking_tables(conn: Connection) -> list[str]:
    return [str(name) for name in conn.execute(_TRACKING_TABLES).scalars()]


def measure(conn: Connection, store: EventStore, now: float | None = None) -> Lags:
    """Every follower's position and lag, read on one connection."""
    now = time.time() if now is None else now
    tables = tracking_tables(conn)
    head = int(conn.execute(_HEAD).scalar_one())
    positions: dict[tuple[str, str], int] = {}
    if tables:
        union = " UNION ALL ".join(
            f"SELECT '{t}' AS tracking_table, application_name, notification_id FROM \"{t}\" "  # noqa: S608
            "WHERE application_name IN (:live, :rebuild)"
            for t in tables
        )
        rows = conn.execute(text(union), {"live": APPLICATION_NAME, "rebuild": REBUILD_KEY})
        positions = {
            (str(row.tracking_table), str(row.application_name)): int(row.notification_id)
            for row in rows
        }
    followers = []
    ages: dict[int, float | None] = {}
    for table in tables:
        position = positions.get((table, APPLICATION_NAME), 0)
        if position not in ages:
            ages[position] = _age_of_next_event(conn, store, position, now)
        followers.append(
            FollowerLag(
                name=table.removesuffix(TRACKING_SUFFIX),
                position=position,
                lag_events=max(head - position, 0),
                lag_seconds=ages[position],
                rebuild_position=positions.get((table, REBUILD_KEY)),
            )
        )
    return Lags(head=head, followers=followers)


def _age_of_next_event(
    conn: Connection, store: EventStore, position: int, now: float
) -> float | None:
    row = conn.execute(_NEXT_EVENT, {"position": position}).one_or_none()
    if row is None:
        return 0.0
    try:
        event = store.mapper.to_domain_event(
            StoredEvent(row.originator_id, row.originator_version, row.topic, bytes(row.state))
        )
        occurred: datetime = getattr(event, "timestamp")  # noqa: B009
        return max(now - occurred.timestamp(), 0.0)
    except Exception as error:  # an event this version cannot decode: report no age
        log.warning("cannot read the time of the event after %d: %s", position, error)
        return None


class LagCollector(Collector):
    """Follower lag for Prometheus, measured in the database at each scrape."""

    def __init__(self, engine: Engine, store: EventStore) -> None:
        self.engine = engine
        self.store = store

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "flowledger_database_up", "Whether the last scrape could read the database (1/0)."
        )
        try:
            with self.engine.connect() as conn:
                lags = measure(conn, self.store)
        except Exception as error:
            log.warning("metrics: cannot measure follower lag: %s", error)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        head = GaugeMetricFamily(
            "flowledger_event_store_head_position", "Global position of the newest event."
        )
        head.add_metric([], lags.head)
        position = GaugeMetricFamily(
            "flowledger_follower_position",
            "Position each follower (projection, relay, webhooks, executor) has reached.",
            labels=["follower"],
        )
        lag_events = GaugeMetricFamily(
            "flowledger_follower_lag_events",
            "Positions between the event store's head and each follower.",
            labels=["follower"],
        )
        lag_seconds = GaugeMetricFamily(
            "flowledger_follower_lag_seconds",
            "Age of the oldest event each follower has not handled yet (0 when caught up).",
            labels=["follower"],
        )
        rebuild = GaugeMetricFamily(
            "flowledger_rebuild_position",
            "Position a projection rebuild in progress has replayed up to.",
            labels=["projection"],
        )
        for follower in lags.followers:
            position.add_metric([follower.name], follower.position)
            lag_events.add_metric([follower.name], follower.lag_events)
            if follower.lag_seconds is not None:
                lag_seconds.add_metric([follower.name], follower.lag_seconds)
            if follower.rebuild_position is not None:
                rebuild.add_metric([follower.name], follower.rebuild_position)
        return [up, head, position, lag_events, lag_seconds, rebuild]
