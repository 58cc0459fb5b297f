"""Run analytics: runs, steps and their durations per hour and per day, kept by the runs
projection in the same transaction as the runs themselves (ADR 0019).

The analytics tables hold, at every position, the sum of what each run *contributes* now: its
count under the hour and the day it was created in, its workflow and its current status; its
duration (once it finished after starting) in a logarithmic histogram bucket; and the same for
each of its steps (with their attempts, and failed attempts, per agent). A contribution is a
function of the run's rows in ``runs``, ``run_steps`` and ``run_step_attempts`` alone, written
once, in :func:`contribution_sql`. The agent tables sum the step tables over workflows and
steps (what ``GET /analytics/agents`` reads for a caller who may view every workflow: a month of
every agent is a few thousand rows, not the steps' 180,000 at a million runs). So the runs
projection keeps the tables exact with two moves
per batch, each one statement: before it writes the rows the batch folded, it subtracts the
contribution of every run the batch changes that existed before it (:func:`take_out`); once
they are written, it adds the contribution of every run the batch touched (:func:`put_back`),
then deletes the rows that fell to zero. Whatever the batches, the tables
are the same (a rebuild gives them again), and the migration that made them filled them with
the same statement over every run.

Durations go into buckets ``ceil(20 · ln(ms))``: bucket ``i`` holds durations in
``(e^((i-1)/20), e^(i/20)]`` ms, and reading it back as ``2·e^(i/20) / (e^(1/20) + 1)`` is
within 2.5% of every duration in it (the DDSketch mapping, relative accuracy 0.025);
durations of 1 ms or less share bucket 0.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any, Final
from uuid import UUID

from sqlalchemy import Connection, text

from flowledger.projections.rowsets import driver
from flowledger.runtime.database import composed

SPANS: Final = ("hour", "day")
"""The sizes of the time buckets kept: a range is read from whole days and the hours around."""
BUCKETS_PER_E: Final = 20
"""Duration buckets per factor of e: 2.5% relative accuracy."""
GAMMA: Final = math.exp(1 / BUCKETS_PER_E)
RELATIVE_ACCURACY: Final = (GAMMA - 1) / (GAMMA + 1)
FINISHED: Final = ("SUCCEEDED", "FAILED", "CANCELLED")


def duration_bucket(duration_ms: float) -> int:
    """The histogram bucket of a duration (the SQL of :func:`contribution_sql` computes the
    same)."""
    return 0 if duration_ms <= 1 else math.ceil(BUCKETS_PER_E * math.log(duration_ms))


def bucket_value(bucket: int) -> float:
    """A duration (ms) within 2.5% of every duration in the bucket (bucket 0: 1 ms)."""
    if bucket <= 0:
        return 1.0
    return 2 * GAMMA**bucket / (GAMMA + 1)


def percentiles(
    histogram: dict[int, int], quantiles: tuple[float, ...]
) -> tuple[int, list[float | None]]:
    """How many durations the histogram holds (bucket: count), and each quantile's duration
    (nearest rank), within 2.5% of the exact one; None when there are none."""
    total = sum(count for count in histogram.values() if count > 0)
    if total == 0:
        return 0, [None for _ in quantiles]
    ranks = [max(1, math.ceil(q * total)) for q in quantiles]
    found: list[float | None] = [None for _ in quantiles]
    seen = 0
    for bucket in sorted(histogram):
        seen += max(0, histogram[bucket])
        for i, rank in enumerate(ranks):
            if found[i] is None and seen >= rank:
                found[i] = round(bucket_value(bucket), 1)
    return total, found


def _bucket_sql(column: str) -> str:
    return (
        f"CASE WHEN {column} <= 1 THEN 0 "
        f"ELSE ceil({BUCKETS_PER_E} * ln({column}::float8))::smallint END"
    )


def contribution_sql(runs_where: str, sign: str) -> str:
    """One statement that adds ``sign`` (an SQL expression: ``1``, ``-1``, ``:sign``) times the
    contribution of the runs ``runs_where`` selects to every analytics table."""
    bucket = "date_trunc(s.span, c.created_at, 'UTC')"
    finished = ", ".join(f"'{status}'" for status in FINISHED)
    spans = ", ".join(f"('{span}')" for span in SPANS)
    # Only this module's constants and column names are formatted in.
    return f"""
WITH r AS (
    SELECT id, workflow_id, status, created_at, started_at, duration_ms
    FROM runs WHERE {runs_where}
), spans(span) AS (VALUES {spans}),
run_counts_delta AS (
    INSERT INTO analytics_runs AS t (span, bucket_start, workflow_id, status, runs)
    SELECT s.span, {bucket}, c.workflow_id, c.status, {sign} * count(*)
    FROM r AS c CROSS JOIN spans AS s
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (span, bucket_start, workflow_id, status)
    DO UPDATE SET runs = t.runs + excluded.runs
), run_durations_delta AS (
    INSERT INTO analytics_run_durations AS t
        (span, bucket_start, workflow_id, duration_bucket, runs)
    SELECT s.span, {bucket}, c.workflow_id, {_bucket_sql("c.duration_ms")}, {sign} * count(*)
    FROM r AS c CROSS JOIN spans AS s
    WHERE c.duration_ms IS NOT NULL AND c.started_at IS NOT NULL AND c.status IN ({finished})
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (span, bucket_start, workflow_id, duration_bucket)
    DO UPDATE SET runs = t.runs + excluded.runs
), failed AS (
    SELECT a.run_id, a.step_id, count(*) AS n
    FROM run_step_attempts AS a JOIN r ON r.id = a.run_id
    WHERE a.outcome = 'failed'
    GROUP BY 1, 2
), st AS (
    SELECT r.created_at, r.workflow_id,
           regexp_replace(rs.step_id, '[[][0-9]+[]]', '', 'g') AS step_id,
           rs.agent_name, rs.status, rs.attempts, rs.duration_ms,
           coalesce(f.n, 0) AS failed_attempts
    FROM r JOIN run_steps AS rs ON rs.run_id = r.id
    LEFT JOIN failed AS f ON f.run_id = rs.run_id AND f.step_id = rs.step_id
    WHERE rs.agent_name IS NOT NULL
), step_counts_delta AS (
    INSERT INTO analytics_steps AS t
        (span, bucket_start, workflow_id, step_id, agent_name, status, steps, attempts,
         retries, failed_attempts)
    SELECT s.span, {bucket}, c.workflow_id, c.step_id, c.agent_name, c.status,
           {sign} * count(*), {sign} * sum(c.attempts), {sign} * sum(greatest(c.attempts - 1, 0)),
           {sign} * sum(c.failed_attempts)
    FROM st AS c CROSS JOIN spans AS s
    GROUP BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (span, bucket_start, workflow_id, step_id, agent_name, status)
    DO UPDATE SET steps = t.steps + excluded.steps, attempts = t.attempts + excluded.attempts,
                  retries = t.retries + excluded.retries,
                  failed_attempts = t.failed_attempts + excluded.failed_attempts
), agent_counts_delta AS (
    INSERT INTO analytics_agent_steps AS t
        (span, bucket_start, agent_name, status, steps, attempts, retries, failed_attempts)
    SELECT s.span, {bucket}, c.agent_name, c.status,
           {sign} * count(*), {sign} * sum(c.attempts), {sign} * sum(greatest(c.attempts - 1, 0)),
           {sign} * sum(c.failed_attempts)
    FROM st AS c CROSS JOIN spans AS s
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (span, bucket_start, agent_name, status)
    DO UPDATE SET steps = t.steps + excluded.steps, attempts = t.attempts + excluded.attempts,
                  retries = t.retries + excluded.retries,
                  failed_attempts = t.failed_attempts + excluded.failed_attempts
), agent_durations_delta AS (
    INSERT INTO analytics_agent_step_durations AS t
        (span, bucket_start, agent_name, duration_bucket, steps)
    SELECT s.span, {bucket}, c.agent_name, {_bucket_sql("c.duration_ms")}, {sign} * count(*)
    FROM st AS c CROSS JOIN spans AS s
    WHERE c.duration_ms IS NOT NULL
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (span, bucket_start, agent_name, duration_bucket)
    DO UPDATE SET steps = t.steps + excluded.steps
)
INSERT INTO analytics_step_durations AS t
    (span, bucket_start, workflow_id, step_id, agent_name, duration_bucket, steps)
SELECT s.span, {bucket}, c.workflow_id, c.step_id, c.agent_name,
       {_bucket_sql("c.duration_ms")}, {sign} * count(*)
FROM st AS c CROSS JOIN spans AS s
WHERE c.duration_ms IS NOT NULL
GROUP BY 1, 2, 3, 4, 5, 6
ON CONFLICT (span, bucket_start, workflow_id, step_id, agent_name, duration_bucket)
DO UPDATE SET steps = t.steps + excluded.steps
"""  # noqa: S608


# Plain-text SQL (a rebuild's search path points it at the fresh tables), sent by psycopg as
# bytes composed once: through SQLAlchemy, each batch compiled and executed it again (a tenth of
# a live projection batch's CPU).
_CHANGE: Final = composed(contribution_sql("id = ANY(%(ids)s)", "%(sign)s::bigint"))
DROP_EMPTY: Final = composed(
    "WITH runs AS (DELETE FROM analytics_runs WHERE runs = 0), "
    "run_durations AS (DELETE FROM analytics_run_durations WHERE runs = 0), "
    "steps AS (DELETE FROM analytics_steps WHERE steps = 0), "
    "step_durations AS (DELETE FROM analytics_step_durations WHERE steps = 0), "
    "agent_steps AS (DELETE FROM analytics_agent_steps WHERE steps = 0) "
    "DELETE FROM analytics_agent_step_durations WHERE steps = 0"
)
"""Rows every run has left (a partial index finds them): the tables hold no zeros, so they are
the same however the events were batched. One statement for the six tables: one round trip
of every batch, not six."""
RECOUNT_ALL: Final = contribution_sql("true", "1")
"""Every run's contribution, added to empty tables (the migration's and the benchmark's fill)."""


def take_out(conn: Connection, run_ids: Collection[UUID]) -> None:
    """Before a batch's rows are written: subtract what the runs it changes (those that existed
    before it) contributed so far."""
    if run_ids:
        driver(conn).execute(_CHANGE, {"ids": list(run_ids), "sign": -1})


def put_back(conn: Connection, run_ids: Collection[UUID]) -> None:
    """After a batch's rows are written: add what every run it changed or requested
    contributes now, then drop the rows that fell to zero."""
    if run_ids:
        raw = driver(conn)
        raw.execute(_CHANGE, {"ids": list(run_ids), "sign": 1})
        raw.execute(DROP_EMPTY)


def recount_all(conn: Any) -> None:
    """Fill empty analytics tables from every run (a DB-API or SQLAlchemy connection)."""
    conn.execute(text(RECOUNT_ALL) if isinstance(conn, Connection) else RECOUNT_ALL)
