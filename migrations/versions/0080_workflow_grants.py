"""Per-workflow grants: each workflow's owner, and the workflow_grants read table the access
policy reads on every request to a workflow or a run (ADR 0010).

Workflows created before owners were recorded are owned by their creator: the rows get
``created_by``, as a rebuild would (the ``WorkflowCreated`` upcast reads the same actor).

Revision ID: 0080
Revises: 0070
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0080"
down_revision: str | None = "0070"
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
    op.add_column("workflows", sa.Column("owner", sa.String(300)))
    op.execute("UPDATE workflows SET owner = created_by")
    op.create_index("ix_workflows_owner", "workflows", ["owner"])

    op.create_table(
        "workflow_grants",
        sa.Column("workflow_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("principal", sa.String(300), primary_key=True),
        sa.Column("can_view", sa.Boolean(), nullable=False),
        sa.Column("can_execute", sa.Boolean(), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("granted_by", sa.String(255)),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_workflow_grants_principal", "workflow_grants", ["principal", "workflow_id"])
    create_tracking_table("workflow_grants")


def downgrade() -> None:
    op.drop_table("workflow_grants_tracking")
    op.drop_table("workflow_grants")
    op.drop_index("ix_workflows_owner", table_name="workflows")
    op.drop_column("workflows", "owner")
