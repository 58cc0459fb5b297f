"""Runs by status, counted in the runs read table at scrape time (so every API process reports
the same numbers, whichever executor drove the runs)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from flowledger.projections.tables import runs

log = logging.getLogger(__name__)

STATUSES = ("PENDING", "RUNNING", "WAITING", "PAUSED", "SUCCEEDED", "FAILED", "CANCELLED")


class RunStatusCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(
            "flowledger_runs",
            "Runs in each status now (from the runs read table).",
            labels=["status"],
        )
        try:
            with self.engine.connect() as conn:
                query = select(runs.c.status, func.count()).group_by(runs.c.status)
                counts: dict[str, int] = {row[0]: int(row[1]) for row in conn.execute(query)}
        except Exception as error:
            log.warning("metrics: cannot count runs: %s", error)
            return []
        for status in STATUSES:
            gauge.add_metric([status], counts.get(status, 0))
        return [gauge]
