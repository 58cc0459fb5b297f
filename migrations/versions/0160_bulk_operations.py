"""Bulk operations (ADR 0020): the ``bulk_operations`` and ``bulk_operation_items`` read tables
of the bulk operations projection, and an index for the runs list's ``agent_name`` filter (runs
with a step calling an agent).

The projection starts from the beginning of the event log; there are no bulk operations before
this revision, so it has nothing to fill in.

Revision ID: 0160
Revises: 0150
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0160"
down_revision: str | None = "0150"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUTOVACUUM = (
    "WITH (autovacuum_enabled = true, autovacuum_vacuum_threshold = 100000000, "
    "autovacuum_vacuum_scale_factor = 0.5, autovacuum_analyze_threshold = 1000, "
    "autovacuum_analyze_scale_factor = 0.01)"
)


def create_tracking_table(name: str) -> None:
    op.execute(
        f"CREATE TABLE {name}_tracking (application_name text, notification_id bigint, "
        f"PRIMARY KEY (application_name)) {AUTOVACUUM}"
    )
    op.execute(f"INSERT INTO {name}_tracking VALUES ('__migration__', 1)")  # noqa: S608


def upgrade() -> None:
    uuid = postgresql.UUID(as_uuid=True)
    op.create_table(
        "bulk_operations",
        sa.Column("id", uuid, primary_key=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("filters", postgresql.JSONB(), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("correlation_id", sa.String(255)),
        sa.Column("stop_reason", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        "ix_bulk_operations_status_created_at", "bulk_operations", ["status", "created_at"]
    )
    op.create_index("ix_bulk_operations_created_at", "bulk_operations", ["created_at"])
    op.create_table(
        "bulk_operation_items",
        sa.Column("operation_id", uuid, primary_key=True),
        sa.Column("run_id", uuid, primary_key=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("run_status", sa.String(16)),
        sa.Column("recorded_at", sa.DateTime(timezone=True)),
        sa.Column("position", sa.BigInteger()),
    )
    op.create_index(
        "ix_bulk_operation_items_operation_seq", "bulk_operation_items", ["operation_id", "seq"]
    )
    op.create_index(
        "ix_bulk_operation_items_operation_outcome",
        "bulk_operation_items",
        ["operation_id", "outcome", "seq"],
    )
    create_tracking_table("bulk_operations")
    op.create_index("ix_run_steps_agent_name_run_id", "run_steps", ["agent_name", "run_id"])


def downgrade() -> None:
    op.drop_index("ix_run_steps_agent_name_run_id", table_name="run_steps")
    op.drop_table("bulk_operations_tracking")
    op.drop_table("bulk_operation_items")
    op.drop_table("bulk_operations")
