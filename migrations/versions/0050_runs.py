"""Runs: read tables (runs, steps, attempts, logs) and the executor's active runs.

Revision ID: 0050
Revises: 0010
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0050"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUTOVACUUM = (
    "WITH (autovacuum_enabled = true, autovacuum_vacuum_threshold = 100000000, "
    "autovacuum_vacuum_scale_factor = 0.5, autovacuum_analyze_threshold = 1000, "
    "autovacuum_analyze_scale_factor = 0.01)"
)
UUID = postgresql.UUID(as_uuid=True)
JSONB = postgresql.JSONB()
TIMESTAMP = sa.DateTime(timezone=True)


def create_tracking_table(name: str) -> None:
    op.execute(
        f"CREATE TABLE {name}_tracking (application_name text, notification_id bigint, "
        f"PRIMARY KEY (application_name)) {AUTOVACUUM}"
    )
    op.execute(f"INSERT INTO {name}_tracking VALUES ('__migration__', 1)")  # noqa: S608


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("workflow_id", UUID, nullable=False),
        sa.Column("workflow_name", sa.String(255), nullable=False),
        sa.Column("workflow_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("input_data", JSONB, nullable=False),
        sa.Column("variables", JSONB, nullable=False),
        sa.Column("output", JSONB),
        sa.Column("error", sa.Text()),
        sa.Column("failed_step", sa.String(255)),
        sa.Column("triggered_by", sa.String(255), nullable=False),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("retry_count", sa.Integer(), nullable=False),
        sa.Column("step_count", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("started_at", TIMESTAMP),
        sa.Column("finished_at", TIMESTAMP),
        sa.Column("duration_ms", sa.BigInteger()),
        sa.Column("cancelled_at", TIMESTAMP),
        sa.Column("cancelled_by", sa.String(255)),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_runs_status_created_at", "runs", ["status", "created_at"])
    op.create_index("ix_runs_workflow_id_created_at", "runs", ["workflow_id", "created_at"])
    op.create_index("ix_runs_created_at", "runs", ["created_at"])
    op.create_index("ix_runs_triggered_by", "runs", ["triggered_by"])
    op.create_table(
        "run_steps",
        sa.Column("run_id", UUID, primary_key=True),
        sa.Column("step_id", sa.String(255), primary_key=True),
        sa.Column("step_order", sa.Integer(), nullable=False),
        sa.Column("agent_name", sa.String(255), nullable=False),
        sa.Column("depends_on", JSONB, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("input", JSONB),
        sa.Column("output", JSONB),
        sa.Column("error", sa.Text()),
        sa.Column("task_id", sa.String(255)),
        sa.Column("started_at", TIMESTAMP),
        sa.Column("finished_at", TIMESTAMP),
        sa.Column("duration_ms", sa.BigInteger()),
        sa.Column("retry_at", TIMESTAMP),
    )
    op.create_table(
        "run_step_attempts",
        sa.Column("run_id", UUID, primary_key=True),
        sa.Column("step_id", sa.String(255), primary_key=True),
        sa.Column("attempt", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("input", JSONB),
        sa.Column("output", JSONB),
        sa.Column("error", sa.Text()),
        sa.Column("task_id", sa.String(255)),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP),
    )
    create_tracking_table("runs")
    op.create_table(
        "run_logs",
        sa.Column("position", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("run_id", UUID, nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("step_id", sa.String(255)),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("logged_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_run_logs_run_id_position", "run_logs", ["run_id", "position"])
    create_tracking_table("run_logs")
    op.create_table(
        "executor_active_runs",
        sa.Column("run_id", UUID, primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    create_tracking_table("executor")


def downgrade() -> None:
    for table in (
        "executor_tracking",
        "executor_active_runs",
        "run_logs_tracking",
        "run_logs",
        "runs_tracking",
        "run_step_attempts",
        "run_steps",
        "runs",
    ):
        op.drop_table(table)
