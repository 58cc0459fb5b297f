"""Read tables, built by projectors from the event store and read by queries.

Alembic migrations create these tables; a test checks that the migrations and these
definitions agree. Each projection also has a tracking table (``<name>_tracking``, the
``eventsourcing`` layout) holding the position it has reached, written in the same
transaction as its rows.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData()


def tracking_table(projection_name: str) -> Table:
    """The ``eventsourcing`` single-row tracking table of one projection."""
    name = f"{projection_name}_tracking"
    if name in metadata.tables:
        return metadata.tables[name]
    return Table(
        name,
        metadata,
        Column("application_name", Text, primary_key=True),
        Column("notification_id", BigInteger),
    )


agents = Table(
    "agents",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("url", String(512), nullable=False),
    Column("description", Text),
    Column("auth_type", String(16), nullable=False),
    Column("auth_config", JSONB),
    Column("timeout_ms", Integer, nullable=False),
    Column("retry_config", JSONB, nullable=False),
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(255)),
    Column("updated_by", String(255)),
    Column("position", BigInteger, nullable=False),
    Index("ix_agents_name", "name"),
    Index("ix_agents_status", "status"),
    Index("ix_agents_created_at", "created_at"),
)
agents_tracking = tracking_table("agents")

audit_log = Table(
    "audit_log",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("entity_type", String(50), nullable=False),
    Column("entity_id", UUID(as_uuid=True), nullable=False),
    Column("entity_version", Integer, nullable=False),
    Column("action", String(50), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("correlation_id", String(255)),
    Column("changes", JSONB),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Index("ix_audit_log_entity", "entity_type", "entity_id"),
    Index("ix_audit_log_occurred_at", "occurred_at"),
    Index("ix_audit_log_actor", "actor"),
    Index("ix_audit_log_action", "action"),
)
audit_log_tracking = tracking_table("audit_log")

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("role", String(16), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("revoked_by", String(255)),
    Column("position", BigInteger, nullable=False),
    Index("ix_api_keys_key_hash", "key_hash", unique=True),
    Index("ix_api_keys_created_at", "created_at"),
)
"""API keys as authentication reads them (by hash, on every request): never the secret."""
api_keys_tracking = tracking_table("api_keys")
