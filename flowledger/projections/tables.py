"""Read tables, built by projectors from the event store and read by queries.

Alembic migrations create these tables; a test checks that the migrations and these
definitions agree. Each projection also has a tracking table (``<name>_tracking``, the
``eventsourcing`` layout) holding the position it has reached, written in the same
transaction as its rows.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSON, JSONB, UUID

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

workflows = Table(
    "workflows",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("description", Text),
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("definition", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(255)),
    Column("updated_by", String(255)),
    Column("position", BigInteger, nullable=False),
    Column("owner", String(300)),
    Index("ix_workflows_name", "name"),
    Index("ix_workflows_status", "status"),
    Index("ix_workflows_created_at", "created_at"),
    Index("ix_workflows_updated_at", "updated_at"),
    Index("ix_workflows_owner", "owner"),
)
"""One row per workflow: its current version's definition, status, times and owner (ADR 0010).
Definitions are ``json``, not ``jsonb``, so they read back exactly as written (steps in the
user's order)."""

workflow_versions = Table(
    "workflow_versions",
    metadata,
    Column("workflow_id", UUID(as_uuid=True), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("definition", JSON, nullable=False),
    Column("changes", JSONB),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(255)),
    Column("position", BigInteger, nullable=False),
)
"""Every version of every workflow; ``changes`` is what it changed from the one before."""

workflow_steps = Table(
    "workflow_steps",
    metadata,
    Column("workflow_id", UUID(as_uuid=True), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("step_id", String(100), primary_key=True),
    Column("step_order", Integer, nullable=False),
    Column("agent_name", String(255), nullable=False),
    Column("depends_on", JSONB, nullable=False),
    Column("input_mapping", JSONB, nullable=False),
    Column("timeout_ms", Integer),
    Column("retry_config", JSONB),
    Index("ix_workflow_steps_agent_name", "agent_name"),
)
"""The normalised steps of every version (``depends_on`` filled in, topological order)."""
workflows_tracking = tracking_table("workflows")

workflow_grants = Table(
    "workflow_grants",
    metadata,
    Column("workflow_id", UUID(as_uuid=True), primary_key=True),
    Column("principal", String(300), primary_key=True),
    Column("can_view", Boolean, nullable=False),
    Column("can_execute", Boolean, nullable=False),
    Column("granted_at", DateTime(timezone=True), nullable=False),
    Column("granted_by", String(255)),
    Column("position", BigInteger, nullable=False),
    Index("ix_workflow_grants_principal", "principal", "workflow_id"),
)
"""Who besides its owner may view or execute each workflow (ADR 0010); the access policy reads
it on every request to a workflow or a run (no cache, like ``api_keys``)."""
workflow_grants_tracking = tracking_table("workflow_grants")

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

executor_active_runs = Table(
    "executor_active_runs",
    metadata,
    Column("run_id", UUID(as_uuid=True), primary_key=True),
    Column("position", BigInteger, nullable=False),
)
executor_tracking = tracking_table("executor")

runs = Table(
    "runs",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("workflow_id", UUID(as_uuid=True), nullable=False),
    Column("workflow_name", String(255), nullable=False),
    Column("workflow_version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("input_data", JSONB, nullable=False),
    Column("variables", JSONB, nullable=False),
    Column("output", JSONB),
    Column("error", Text),
    Column("failed_step", String(255)),
    Column("triggered_by", String(255), nullable=False),
    Column("idempotency_key", String(255)),
    Column("retry_count", Integer, nullable=False),
    Column("step_count", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("duration_ms", BigInteger),
    Column("cancelled_at", DateTime(timezone=True)),
    Column("cancelled_by", String(255)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),
    Index("ix_runs_status_created_at", "status", "created_at"),
    Index("ix_runs_workflow_id_created_at", "workflow_id", "created_at"),
    Index("ix_runs_created_at", "created_at"),
    Index("ix_runs_triggered_by", "triggered_by"),
    Index("ix_runs_workflow_id_status_created_at", "workflow_id", "status", "created_at"),
)
run_counts = Table(
    "run_counts",
    metadata,
    Column("workflow_id", UUID(as_uuid=True), primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("runs", BigInteger, nullable=False),
)
"""How many runs each workflow has in each status, kept by the runs projection with ``runs``:
a list's ``total`` filtered by nothing but workflow and status sums these rows instead of
counting up to a million runs (migration 0090)."""
run_steps = Table(
    "run_steps",
    metadata,
    Column("run_id", UUID(as_uuid=True), primary_key=True),
    Column("step_id", String(255), primary_key=True),
    Column("step_order", Integer, nullable=False),
    Column("agent_name", String(255), nullable=False),
    Column("depends_on", JSONB, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("input", JSONB),
    Column("output", JSONB),
    Column("error", Text),
    Column("task_id", String(255)),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("duration_ms", BigInteger),
    Column("retry_at", DateTime(timezone=True)),
)
run_step_attempts = Table(
    "run_step_attempts",
    metadata,
    Column("run_id", UUID(as_uuid=True), primary_key=True),
    Column("step_id", String(255), primary_key=True),
    Column("attempt", Integer, primary_key=True, autoincrement=False),
    Column("outcome", String(16), nullable=False),
    Column("input", JSONB),
    Column("output", JSONB),
    Column("error", Text),
    Column("task_id", String(255)),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
)
runs_tracking = tracking_table("runs")

run_logs = Table(
    "run_logs",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("run_id", UUID(as_uuid=True), nullable=False),
    Column("level", String(8), nullable=False),
    Column("step_id", String(255)),
    Column("message", Text, nullable=False),
    Column("logged_at", DateTime(timezone=True), nullable=False),
    Index("ix_run_logs_run_id_position", "run_id", "position"),
)
run_logs_tracking = tracking_table("run_logs")

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

# --------------------------------------------------------------------- webhooks (ADR 0007)

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("url", String(512), nullable=False),
    Column("description", Text),
    Column("event_types", JSONB, nullable=False),
    Column("secret", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(255)),
    Column("updated_by", String(255)),
    Column("position", BigInteger, nullable=False),
    Index("ix_webhooks_status", "status"),
)
"""The webhooks projection's read table; ``secret`` signs deliveries and is never returned."""
webhooks_tracking = tracking_table("webhooks")

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("webhook_id", UUID(as_uuid=True), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("aggregate_type", String(50), nullable=False),
    Column("aggregate_id", UUID(as_uuid=True), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
    UniqueConstraint("webhook_id", "position", name="uq_webhook_deliveries_webhook_position"),
    Index(
        "ix_webhook_deliveries_pending",
        "webhook_id",
        "position",
        postgresql_where=text("status = 'pending'"),
    ),
)
"""The outbox: one row per (webhook, event), enqueued by the webhooks projection in the same
transaction as its position; the sender updates status and attempts (operational state)."""

webhook_delivery_attempts = Table(
    "webhook_delivery_attempts",
    metadata,
    Column("delivery_id", UUID(as_uuid=True), primary_key=True),
    Column("attempt", Integer, primary_key=True, autoincrement=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("succeeded", Boolean, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("response_excerpt", Text),
)

webhook_leases = Table(
    "webhook_leases",
    metadata,
    Column("webhook_id", UUID(as_uuid=True), primary_key=True),
    Column("owner", String(100), nullable=False),
    Column("lease_until", DateTime(timezone=True), nullable=False),
)
"""Which sender process delivers a webhook's queue (one at a time, so deliveries stay in order)."""

# ------------------------------------------------------------------ Kafka relay (ADR 0007)

relay_tracking = tracking_table("relay")
"""The relay's position: the last event the broker acknowledged."""

relay_state = Table(
    "relay_state",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("cluster_id", String(255)),
    Column("topics", JSONB, nullable=False),
    Column("last_published_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("leader", String(255)),
)
"""Which cluster the relay's position refers to (a new cluster id means republish from zero),
the topics it has created, its last error, and which relay process leads (``host:pid``; shown
by ``/health/ready``)."""
