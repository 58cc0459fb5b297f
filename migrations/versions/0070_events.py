"""One event stream for every subscriber: webhooks (read table, delivery outbox, attempts,
sender leases) and the Kafka relay's position and state.

Revision ID: 0070
Revises: 0060
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0070"
down_revision: str | None = "0060"
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
        "webhooks",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("url", sa.String(512), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("event_types", postgresql.JSONB(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(255)),
        sa.Column("updated_by", sa.String(255)),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_webhooks_status", "webhooks", ["status"])
    create_tracking_table("webhooks")

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("webhook_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("aggregate_type", sa.String(50), nullable=False),
        sa.Column("aggregate_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("last_status_code", sa.Integer()),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint(
            "webhook_id", "position", name="uq_webhook_deliveries_webhook_position"
        ),
    )
    op.create_index(
        "ix_webhook_deliveries_pending",
        "webhook_deliveries",
        ["webhook_id", "position"],
        postgresql_where=sa.text("status = 'pending'"),
    )

    op.create_table(
        "webhook_delivery_attempts",
        sa.Column("delivery_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("attempt", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("error", sa.Text()),
        sa.Column("response_excerpt", sa.Text()),
    )

    op.create_table(
        "webhook_leases",
        sa.Column("webhook_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
    )

    create_tracking_table("relay")
    op.create_table(
        "relay_state",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("cluster_id", sa.String(255)),
        sa.Column("topics", postgresql.JSONB(), nullable=False),
        sa.Column("last_published_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("relay_state")
    op.drop_table("relay_tracking")
    op.drop_table("webhook_leases")
    op.drop_table("webhook_delivery_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks_tracking")
    op.drop_table("webhooks")
