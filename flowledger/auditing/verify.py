"""``flowledger audit verify``: recompute the audit log from the event store and compare.

Every public event up to the audit projection's position must have exactly the row
:func:`~flowledger.projections.audit.audit_row` computes for it. A row is *missing* (unless
its event is older than the retention, whose rows may have been purged), *altered* (some
field differs), or *unexpected* (no public event has its position: a forged row).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

import msgspec
from sqlalchemy import Engine, select

from flowledger.eventlog.store import APPLICATION_NAME, EventStore, is_internal
from flowledger.projections.audit import audit_row, retention_cutoff
from flowledger.projections.tables import audit_log, tracking_table

COMPARED: Final = (
    "entity_type",
    "entity_id",
    "entity_version",
    "action",
    "event_type",
    "actor",
    "correlation_id",
    "changes",
    "occurred_at",
)


@dataclass(frozen=True)
class Discrepancy:
    position: int
    kind: Literal["missing", "altered", "unexpected"]
    detail: str


@dataclass
class VerifyReport:
    checked_up_to: int
    """The audit projection's position: later events are not expected in the log yet."""
    events: int = 0
    """Public events checked."""
    matching: int = 0
    purged: int = 0
    """Rows absent because their event is older than the retention: allowed."""
    discrepancies: list[Discrepancy] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.discrepancies


def _normalised(value: Any) -> Any:
    """JSON values as PostgreSQL's JSONB gives them back."""
    return msgspec.json.decode(msgspec.json.encode(value)) if value is not None else None


def compare(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    """The names of the fields where a stored row differs from the recomputed one."""
    differing = []
    for name in COMPARED:
        want, have = expected[name], actual[name]
        if name == "changes":
            want, have = _normalised(want), _normalised(have)
        if want != have:
            differing.append(name)
    return differing


def _audit_position(engine: Engine) -> int:
    tracking = tracking_table("audit_log")
    with engine.connect() as conn:
        value = conn.execute(
            select(tracking.c.notification_id).where(
                tracking.c.application_name == APPLICATION_NAME
            )
        ).scalar_one_or_none()
    return int(value or 0)


def _rows(engine: Engine, after: int, up_to: int) -> dict[int, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_log).where(audit_log.c.position > after, audit_log.c.position <= up_to)
        ).mappings()
        return {row["position"]: dict(row) for row in rows}


def _batches(store: EventStore, up_to: int, size: int) -> Iterator[tuple[int, list[Any]]]:
    """(position before the batch, notifications) up to ``up_to``, in order."""
    after = 0
    while after < up_to:
        batch = list(store.read(after or None, size, until=up_to))
        if not batch:
            return
        yield after, batch
        after = batch[-1].id


def verify_audit_log(
    store: EventStore,
    engine: Engine,
    *,
    now: datetime,
    retention_days: int | None,
    batch_size: int = 1_000,
) -> VerifyReport:
    up_to = _audit_position(engine)
    cutoff = retention_cutoff(now, retention_days)
    report = VerifyReport(checked_up_to=up_to)
    last = 0
    for after, batch in _batches(store, up_to, batch_size):
        last = batch[-1].id
        stored = _rows(engine, after, batch[-1].id)
        for notification in batch:
            row = stored.pop(notification.id, None)
            if is_internal(notification.topic):
                if row is not None:
                    stored[notification.id] = row  # reported as unexpected below
                continue
            report.events += 1
            expected = audit_row(store.decode(notification), notification.id)
            if row is None:
                if cutoff is not None and expected["occurred_at"] < cutoff:
                    report.purged += 1
                else:
                    report.discrepancies.append(
                        Discrepancy(
                            notification.id,
                            "missing",
                            f"{expected['event_type']} of {expected['entity_type']} "
                            f"{expected['entity_id']} has no audit row",
                        )
                    )
                continue
            differing = compare(expected, row)
            if differing:
                shown = ", ".join(
                    f"{name}: stored {row[name]!r}, expected {expected[name]!r}"
                    for name in differing
                )
                report.discrepancies.append(Discrepancy(notification.id, "altered", shown))
            else:
                report.matching += 1
        for position in sorted(stored):
            report.discrepancies.append(
                Discrepancy(position, "unexpected", "no public event has this position")
            )
    for position in sorted(_rows(engine, last, 2**62)):
        report.discrepancies.append(
            Discrepancy(position, "unexpected", "no public event has this position")
        )
    report.discrepancies.sort(key=lambda d: d.position)
    return report
