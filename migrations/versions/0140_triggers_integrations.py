"""Triggers at work (issue 17): the triggers and their firings, integrations, agent kinds.

``triggers`` and ``trigger_firings`` are the triggers projection's tables (every schedule and
webhook trigger, how far it has fired, each firing); ``integrations`` is the integrations
projection's (n8n instances and their last sync). ``agents.kind`` says how a step calls an
agent: ``a2a`` (every agent so far) or ``n8n``. All are filled from the event store by their
projections (new projections start from position zero).

Revision ID: 0140
Revises: 0130
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0140"
down_revision: str | None = "0130"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = postgresql.UUID(as_uuid=True)
TIME = sa.DateTime(timezone=True)


AUTOVACUUM = (
    "WITH (autovacuum_enabled = true, autovacuum_vacuum_threshold = 100000000, "
    "autovacuum_vacuum_scale_factor = 0.5, autovacuum_analyze_threshold = 1000, "
    "autovacuum_analyze_scale_factor = 0.01)"
)


def _tracking(name: str) -> None:
    """The ``eventsourcing`` tracking table, as the earlier migrations make them."""
    op.execute(
        f"CREATE TABLE {name}_tracking (application_name text, notification_id bigint, "
        f"PRIMARY KEY (application_name)) {AUTOVACUUM}"
    )
    op.execute(f"INSERT INTO {name}_tracking VALUES ('__migration__', 1)")  # noqa: S608


def upgrade() -> None:
    op.add_column("agents", sa.Column("kind", sa.String(16), nullable=False, server_default="a2a"))
    op.create_table(
        "triggers",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("workflow_id", UUID, nullable=False),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("config", postgresql.JSONB(), nullable=False),
        sa.Column("path", sa.String(100)),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("removed", sa.Boolean(), nullable=False),
        sa.Column("workflow_version", sa.Integer(), nullable=False),
        sa.Column("fire_from", TIME, nullable=False),
        sa.Column("last_tick", TIME),
        sa.Column("last_fired_at", TIME),
        sa.Column("fired_count", sa.BigInteger(), nullable=False),
        sa.Column("failed_count", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_triggers_workflow_id", "triggers", ["workflow_id"])
    op.create_index("ix_triggers_path", "triggers", ["path"])
    op.create_table(
        "trigger_firings",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("trigger_id", UUID, nullable=False),
        sa.Column("workflow_id", UUID, nullable=False),
        sa.Column("scheduled_for", TIME),
        sa.Column("run_id", UUID),
        sa.Column("error", sa.Text()),
        sa.Column("fired_at", TIME, nullable=False),
        sa.Column("actor", sa.String(300), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        "ix_trigger_firings_trigger_id_fired_at", "trigger_firings", ["trigger_id", "fired_at"]
    )
    _tracking("triggers")
    op.create_table(
        "integrations",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("url", sa.String(512), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_sync", TIME),
        sa.Column("last_error", sa.Text()),
        sa.Column("synced_count", sa.Integer(), nullable=False),
        sa.Column("agents", postgresql.JSONB(), nullable=False),
        sa.Column("errors", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    _tracking("integrations")


def downgrade() -> None:
    op.drop_table("integrations_tracking")
    op.drop_table("integrations")
    op.drop_table("triggers_tracking")
    op.drop_table("trigger_firings")
    op.drop_table("triggers")
    op.drop_column("agents", "kind")
