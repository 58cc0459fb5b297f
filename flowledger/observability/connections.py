"""Connections on the database server against its limit, for Prometheus, measured at each
scrape (so every API process reports the same numbers), and this process's own budget."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from flowledger.runtime import connections
from flowledger.runtime.connections import PoolBudget

log = logging.getLogger(__name__)


class ConnectionsCollector(Collector):
    def __init__(self, engine: Engine, budget: PoolBudget | None = None) -> None:
        self.engine = engine
        self.budget = budget

    def collect(self) -> Iterable[Metric]:
        families = list(self._budget())
        try:
            with self.engine.connect() as conn:
                usage = connections.connection_usage(conn)
        except Exception as error:
            log.warning("metrics: cannot count the database's connections: %s", error)
            return families
        in_use = GaugeMetricFamily(
            "flowledger_database_connections",
            "Client connections on the database server now, by the flowledger process role "
            "holding them (api, worker projections, ..., an operator's command); other: not "
            "flowledger's.",
            labels=["role"],
        )
        for role, count in usage.by_role.items():
            in_use.add_metric([role], count)
        limit = GaugeMetricFamily(
            "flowledger_database_connections_limit",
            "Client connections the server allows flowledger's database user (max_connections, "
            "less the reserved slots the user may not take).",
        )
        limit.add_metric([], usage.limit)
        return [*families, in_use, limit]

    def _budget(self) -> Iterable[Metric]:
        if self.budget is None:
            return []
        budget = GaugeMetricFamily(
            "flowledger_connection_budget",
            "The most connections each pool of this process opens (FLOWLEDGER_DB_POOL_SIZE, "
            "shared by the process's role).",
            labels=["pool"],
        )
        for pool, size in (
            ("store", self.budget.store),
            ("sync", self.budget.sync),
            ("async", self.budget.async_),
            ("listen", self.budget.listen),
        ):
            budget.add_metric([pool], size)
        return [budget]
