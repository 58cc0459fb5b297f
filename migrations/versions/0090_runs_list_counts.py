"""Runs lists at a million runs: an index for a workflow's runs of one status newest first, and
``run_counts``, the runs projection's count of runs per workflow and status, so a list's
``total`` is a sum of a few rows instead of a count of every matching run.

``run_counts`` is filled from the runs already projected, as the projection would have counted
them; from then on the runs projection keeps it in the same transaction as ``runs``.

Revision ID: 0090
Revises: 0080
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0090"
down_revision: str | None = "0080"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_runs_workflow_id_status_created_at", "runs", ["workflow_id", "status", "created_at"]
    )
    op.create_table(
        "run_counts",
        sa.Column("workflow_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("runs", sa.BigInteger(), nullable=False),
    )
    op.execute(
        "INSERT INTO run_counts (workflow_id, status, runs) "
        "SELECT workflow_id, status, count(*) FROM runs GROUP BY workflow_id, status"
    )


def downgrade() -> None:
    op.drop_table("run_counts")
    op.drop_index("ix_runs_workflow_id_status_created_at", table_name="runs")
