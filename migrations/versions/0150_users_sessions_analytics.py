"""Users, their sessions, API keys of users, the shared state of sign-in, and run analytics.

- ``users`` and ``user_sessions`` (the users projection, ADR 0018): what sign-in and every
  request with a session's access token read.
- ``api_keys.user_id`` and ``api_keys.permissions``: a key may act as a user, and be limited
  to some of its role's permissions (null for the keys issued before: their role's).
- ``sign_in_failures`` (failed sign-ins per account and address) and ``auth_signing_keys``
  (the key of session access tokens when none is configured): operational state every API
  process shares.
- ``analytics_*`` (ADR 0019): runs and steps per hour and day, kept by the runs projection;
  filled here from the runs projected so far, as the projection would have counted them.

Revision ID: 0150
Revises: 0140
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0150"
down_revision: str | None = "0140"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUTOVACUUM = (
    "WITH (autovacuum_enabled = true, autovacuum_vacuum_threshold = 100000000, "
    "autovacuum_vacuum_scale_factor = 0.5, autovacuum_analyze_threshold = 1000, "
    "autovacuum_analyze_scale_factor = 0.01)"
)
UUID = postgresql.UUID(as_uuid=True)
TIME = sa.DateTime(timezone=True)

RECOUNT_ANALYTICS = """
WITH r AS (
    SELECT id, workflow_id, status, created_at, started_at, duration_ms FROM runs
), spans(span) AS (VALUES ('hour'), ('day')),
run_counts_delta AS (
    INSERT INTO analytics_runs (span, bucket_start, workflow_id, status, runs)
    SELECT s.span, date_trunc(s.span, c.created_at, 'UTC'), c.workflow_id, c.status, count(*)
    FROM r AS c CROSS JOIN spans AS s
    GROUP BY 1, 2, 3, 4
), run_durations_delta AS (
    INSERT INTO analytics_run_durations (span, bucket_start, workflow_id, duration_bucket, runs)
    SELECT s.span, date_trunc(s.span, c.created_at, 'UTC'), c.workflow_id,
           CASE WHEN c.duration_ms <= 1 THEN 0
                ELSE ceil(20 * ln(c.duration_ms::float8))::smallint END,
           count(*)
    FROM r AS c CROSS JOIN spans AS s
    WHERE c.duration_ms IS NOT NULL AND c.started_at IS NOT NULL
      AND c.status IN ('SUCCEEDED', 'FAILED', 'CANCELLED')
    GROUP BY 1, 2, 3, 4
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
    INSERT INTO analytics_steps
        (span, bucket_start, workflow_id, step_id, agent_name, status, steps, attempts,
         retries, failed_attempts)
    SELECT s.span, date_trunc(s.span, c.created_at, 'UTC'), c.workflow_id, c.step_id,
           c.agent_name, c.status, count(*), sum(c.attempts), sum(greatest(c.attempts - 1, 0)),
           sum(c.failed_attempts)
    FROM st AS c CROSS JOIN spans AS s
    GROUP BY 1, 2, 3, 4, 5, 6
)
INSERT INTO analytics_step_durations
    (span, bucket_start, workflow_id, step_id, agent_name, duration_bucket, steps)
SELECT s.span, date_trunc(s.span, c.created_at, 'UTC'), c.workflow_id, c.step_id, c.agent_name,
       CASE WHEN c.duration_ms <= 1 THEN 0
            ELSE ceil(20 * ln(c.duration_ms::float8))::smallint END,
       count(*)
FROM st AS c CROSS JOIN spans AS s
WHERE c.duration_ms IS NOT NULL
GROUP BY 1, 2, 3, 4, 5, 6
"""
"""Every projected run's contribution to the analytics tables (the runs projection's own
statement, ``flowledger.projections.run_analytics.RECOUNT_ALL``, as it was at this revision)."""


def create_tracking_table(name: str) -> None:
    op.execute(
        f"CREATE TABLE {name}_tracking (application_name text, notification_id bigint, "
        f"PRIMARY KEY (application_name)) {AUTOVACUUM}"
    )
    op.execute(f"INSERT INTO {name}_tracking VALUES ('__migration__', 1)")  # noqa: S608


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("email_key", sa.String(254), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("signed_out_at_version", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("created_by", sa.String(255)),
        sa.Column("updated_by", sa.String(255)),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_users_email_key", "users", ["email_key"])
    op.create_index("ix_users_created_at", "users", ["created_at"])
    op.create_table(
        "user_sessions",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("user_id", UUID, nullable=False),
        sa.Column("user_version", sa.Integer(), nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("refreshed_at", TIME),
        sa.Column("refreshes", sa.Integer(), nullable=False),
        sa.Column("ended_at", TIME),
        sa.Column("ended_reason", sa.String(32)),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        "ix_user_sessions_user_id_started_at", "user_sessions", ["user_id", "started_at"]
    )
    create_tracking_table("users")

    op.add_column("api_keys", sa.Column("user_id", UUID))
    op.add_column("api_keys", sa.Column("permissions", postgresql.JSONB()))
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])

    op.create_table(
        "sign_in_failures",
        sa.Column("key", sa.String(400), primary_key=True),
        sa.Column("window_started_at", TIME, nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_sign_in_failures_window_started_at", "sign_in_failures", ["window_started_at"]
    )
    op.create_table(
        "auth_signing_keys",
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
    )

    _create_analytics_tables()
    op.execute(RECOUNT_ANALYTICS)


def _histogram_or_counts(name: str, keys: list[sa.Column], counts: list[sa.Column]) -> None:
    counted = counts[0].name
    op.create_table(
        name,
        sa.Column("span", sa.String(8), primary_key=True),
        sa.Column("bucket_start", TIME, primary_key=True),
        sa.Column("workflow_id", UUID, primary_key=True),
        *keys,
        *counts,
    )
    op.create_index(f"ix_{name}_workflow", name, ["workflow_id", "span", "bucket_start"])
    op.create_index(f"ix_{name}_empty", name, ["span"], postgresql_where=sa.text(f"{counted} = 0"))


def _create_analytics_tables() -> None:
    def step_keys() -> list[sa.Column]:
        return [
            sa.Column("step_id", sa.String(255), primary_key=True),
            sa.Column("agent_name", sa.String(255), primary_key=True),
        ]

    def bucket() -> sa.Column:
        return sa.Column(
            "duration_bucket", sa.SmallInteger(), primary_key=True, autoincrement=False
        )

    def counted(name: str) -> sa.Column:
        return sa.Column(name, sa.BigInteger(), nullable=False)

    _histogram_or_counts(
        "analytics_runs",
        [sa.Column("status", sa.String(16), primary_key=True)],
        [counted("runs")],
    )
    _histogram_or_counts("analytics_run_durations", [bucket()], [counted("runs")])
    _histogram_or_counts(
        "analytics_steps",
        [*step_keys(), sa.Column("status", sa.String(16), primary_key=True)],
        [counted("steps"), counted("attempts"), counted("retries"), counted("failed_attempts")],
    )
    _histogram_or_counts("analytics_step_durations", [*step_keys(), bucket()], [counted("steps")])


def downgrade() -> None:
    for name in (
        "analytics_step_durations",
        "analytics_steps",
        "analytics_run_durations",
        "analytics_runs",
        "auth_signing_keys",
        "sign_in_failures",
        "users_tracking",
        "user_sessions",
        "users",
    ):
        op.drop_table(name)
    op.drop_index("ix_api_keys_user_id", table_name="api_keys")
    op.drop_column("api_keys", "permissions")
    op.drop_column("api_keys", "user_id")
