"""Workflows: current version, every version, normalised steps of every version.

Definitions are ``json`` (not ``jsonb``) so they read back exactly as written.

Revision ID: 0010
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0001"
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
    op.create_table(
        "workflows",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", postgresql.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(255)),
        sa.Column("updated_by", sa.String(255)),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_workflows_name", "workflows", ["name"])
    op.create_index("ix_workflows_status", "workflows", ["status"])
    op.create_index("ix_workflows_created_at", "workflows", ["created_at"])
    op.create_index("ix_workflows_updated_at", "workflows", ["updated_at"])

    op.create_table(
        "workflow_versions",
        sa.Column("workflow_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("definition", postgresql.JSON(), nullable=False),
        sa.Column("changes", postgresql.JSONB()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(255)),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )

    op.create_table(
        "workflow_steps",
        sa.Column("workflow_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("step_id", sa.String(100), primary_key=True),
        sa.Column("step_order", sa.Integer(), nullable=False),
        sa.Column("agent_name", sa.String(255), nullable=False),
        sa.Column("depends_on", postgresql.JSONB(), nullable=False),
        sa.Column("input_mapping", postgresql.JSONB(), nullable=False),
        sa.Column("timeout_ms", sa.Integer()),
        sa.Column("retry_config", postgresql.JSONB()),
    )
    op.create_index("ix_workflow_steps_agent_name", "workflow_steps", ["agent_name"])
    create_tracking_table("workflows")


def downgrade() -> None:
    op.drop_table("workflows_tracking")
    op.drop_table("workflow_steps")
    op.drop_table("workflow_versions")
    op.drop_table("workflows")
