"""Trigger firings by trigger type and outcome, counted in the triggers read table at scrape
time (so every API process reports the same numbers, whichever scheduler fired)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from flowledger.projections.tables import triggers

log = logging.getLogger(__name__)

TYPES = ("schedule", "webhook")


class TriggerFiringsCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "flowledger_trigger_firings",
            "Trigger firings recorded, by trigger type and outcome: fired (a run started) or "
            "failed (it could not start; schedule ticks only).",
            labels=["type", "outcome"],
        )
        query = select(
            triggers.c.type, func.sum(triggers.c.fired_count), func.sum(triggers.c.failed_count)
        ).group_by(triggers.c.type)
        try:
            with self.engine.connect() as conn:
                counts = {
                    row[0]: (int(row[1] or 0), int(row[2] or 0)) for row in conn.execute(query)
                }
        except Exception as error:
            log.warning("metrics: cannot count trigger firings: %s", error)
            return []
        for kind in TYPES:
            fired, failed = counts.get(kind, (0, 0))
            family.add_metric([kind, "fired"], fired)
            family.add_metric([kind, "failed"], failed)
        return [family]
