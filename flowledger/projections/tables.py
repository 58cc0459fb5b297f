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
    PrimaryKeyConstraint,
    SmallInteger,
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
    Column("kind", String(16), nullable=False, server_default="a2a"),
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
    Column("agent_name", String(255)),
    Column("depends_on", JSONB, nullable=False),
    Column("input_mapping", JSONB, nullable=False),
    Column("timeout_ms", Integer),
    Column("retry_config", JSONB),
    Column("kind", String(16), nullable=False, server_default="agent"),
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
    Column("wake_at", DateTime(timezone=True)),
    Column("parent_run_id", UUID(as_uuid=True)),
    Index("ix_executor_active_runs_wake_at", "wake_at"),
)
"""Runs not finished, and when each needs driving (see ``executor/active_runs.py``)."""
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
    Column("parent_run_id", UUID(as_uuid=True)),
    Column("parent_step_id", Text),
    Index("ix_runs_status_created_at", "status", "created_at"),
    Index("ix_runs_workflow_id_created_at", "workflow_id", "created_at"),
    Index("ix_runs_created_at", "created_at"),
    Index("ix_runs_triggered_by", "triggered_by"),
    Index("ix_runs_workflow_id_status_created_at", "workflow_id", "status", "created_at"),
    Index("ix_runs_parent_run_id", "parent_run_id"),
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
    Column("step_id", Text, primary_key=True),
    Column("step_order", Integer, nullable=False),
    Column("agent_name", String(255)),
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
    Column("kind", String(16), nullable=False, server_default="agent"),
    Column("parent_step_id", Text),
    Column("item_index", Integer),
    Column("items", Integer),
    Column("child_run_id", UUID(as_uuid=True)),
    Column("signal", Text),
    Column("wake_at", DateTime(timezone=True)),
    Index("ix_run_steps_agent_name_run_id", "agent_name", "run_id"),
)
"""One row per step instance: the top-level steps from the run's request, the instances of map
and loop bodies (``each[3].price``) from when they begin."""
run_body_steps = Table(
    "run_body_steps",
    metadata,
    Column("run_id", UUID(as_uuid=True), primary_key=True),
    Column("step_id", String(100), primary_key=True),
    Column("step_order", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("agent_name", String(255)),
    Column("depends_on", JSONB, nullable=False),
)
"""The steps of each run's map and loop bodies, from which instance rows are made."""
run_step_attempts = Table(
    "run_step_attempts",
    metadata,
    Column("run_id", UUID(as_uuid=True), primary_key=True),
    Column("step_id", Text, primary_key=True),
    Column("attempt", Integer, primary_key=True, autoincrement=False),
    Column("outcome", String(16), nullable=False),
    Column("input", JSONB),
    Column("output", JSONB),
    Column("error", Text),
    Column("task_id", String(255)),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("child_run_id", UUID(as_uuid=True)),
)
runs_tracking = tracking_table("runs")

run_logs = Table(
    "run_logs",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("run_id", UUID(as_uuid=True), nullable=False),
    Column("level", String(8), nullable=False),
    Column("step_id", Text),
    Column("message", Text, nullable=False),
    Column("logged_at", DateTime(timezone=True), nullable=False),
    Index("ix_run_logs_run_id_position", "run_id", "position"),
)
run_logs_tracking = tracking_table("run_logs")

# ---------------------------------------------------------------- bulk operations (ADR 0020)

bulk_operations = Table(
    "bulk_operations",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("action", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("filters", JSONB, nullable=False),
    Column("reason", Text),
    Column("matched", Integer, nullable=False),
    Column("done", Integer, nullable=False),
    Column("skipped", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("requested_by", String(255), nullable=False),
    Column("correlation_id", String(255)),
    Column("stop_reason", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("version", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),
    Index("ix_bulk_operations_status_created_at", "status", "created_at"),
    Index("ix_bulk_operations_created_at", "created_at"),
)
"""One row per bulk operation: what was asked and how far it got (counts of its items)."""
bulk_operation_items = Table(
    "bulk_operation_items",
    metadata,
    Column("operation_id", UUID(as_uuid=True), primary_key=True),
    Column("run_id", UUID(as_uuid=True), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("reason", Text),
    Column("run_status", String(16)),
    Column("recorded_at", DateTime(timezone=True)),
    Column("position", BigInteger),
    Index("ix_bulk_operation_items_operation_seq", "operation_id", "seq"),
    Index("ix_bulk_operation_items_operation_outcome", "operation_id", "outcome", "seq"),
)
"""Every run an operation matched, in its order: ``pending`` until its item is recorded, then
``done``, ``skipped`` or ``failed`` (with the reason and the run's status after it)."""
bulk_operations_tracking = tracking_table("bulk_operations")

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
    Column("user_id", UUID(as_uuid=True)),
    Column("permissions", JSONB),
    Index("ix_api_keys_key_hash", "key_hash", unique=True),
    Index("ix_api_keys_created_at", "created_at"),
    Index("ix_api_keys_user_id", "user_id"),
)
"""API keys as authentication reads them (by hash, on every request): never the secret.
``user_id``: the user a key acts as (migration 0150); ``permissions``: the only ones it may use
(null: its role's)."""
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

# ------------------------------------------------------------ triggers and integrations (0013)

triggers = Table(
    "triggers",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("workflow_id", UUID(as_uuid=True), nullable=False),
    Column("key", String(100), nullable=False),
    Column("type", String(16), nullable=False),
    Column("config", JSONB, nullable=False),
    Column("path", String(100)),
    Column("enabled", Boolean, nullable=False),
    Column("paused", Boolean, nullable=False),
    Column("removed", Boolean, nullable=False),
    Column("workflow_version", Integer, nullable=False),
    Column("fire_from", DateTime(timezone=True), nullable=False),
    Column("last_tick", DateTime(timezone=True)),
    Column("last_fired_at", DateTime(timezone=True)),
    Column("fired_count", BigInteger, nullable=False),
    Column("failed_count", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("position", BigInteger, nullable=False),
    Index("ix_triggers_workflow_id", "workflow_id"),
    Index("ix_triggers_path", "path"),
)
"""Every schedule and webhook trigger, with how far it has fired. ``config`` is the trigger as
written (with its webhook's secrets, which the hooks endpoint checks and no answer shows)."""
triggers_tracking = tracking_table("triggers")

trigger_firings = Table(
    "trigger_firings",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("trigger_id", UUID(as_uuid=True), nullable=False),
    Column("workflow_id", UUID(as_uuid=True), nullable=False),
    Column("scheduled_for", DateTime(timezone=True)),
    Column("run_id", UUID(as_uuid=True)),
    Column("error", Text),
    Column("fired_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(300), nullable=False),
    Column("position", BigInteger, nullable=False),
    Index("ix_trigger_firings_trigger_id_fired_at", "trigger_id", "fired_at"),
)
"""Each firing of a trigger (the triggers projection keeps it)."""

integrations = Table(
    "integrations",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("url", String(512), nullable=False),
    Column("status", String(16), nullable=False),
    Column("last_sync", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("synced_count", Integer, nullable=False),
    Column("agents", JSONB, nullable=False),
    Column("errors", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("position", BigInteger, nullable=False),
)
"""One row per integration (an n8n instance); its credentials are not projected."""
integrations_tracking = tracking_table("integrations")

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

# ------------------------------------------------------------- users and sessions (ADR 0018)

users = Table(
    "users",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("email", String(254), nullable=False),
    Column("email_key", String(254), nullable=False),
    Column("name", String(100), nullable=False),
    Column("role", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("signed_out_at_version", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(255)),
    Column("updated_by", String(255)),
    Column("position", BigInteger, nullable=False),
    Index("ix_users_email_key", "email_key"),
    Index("ix_users_created_at", "created_at"),
)
"""Users as sign-in and authentication read them. ``password_hash`` (argon2id) is read to check
a password and never returned; ``signed_out_at_version``: sessions started at an earlier
version of the user are over."""

user_sessions = Table(
    "user_sessions",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("user_version", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("refreshed_at", DateTime(timezone=True)),
    Column("refreshes", Integer, nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Column("ended_reason", String(32)),
    Column("version", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),
    Index("ix_user_sessions_user_id_started_at", "user_id", "started_at"),
)
"""Every session; authentication reads a session's row (and its user's) on every request made
with one of its access tokens, so ending it refuses them from the next request on."""
users_tracking = tracking_table("users")

sign_in_failures = Table(
    "sign_in_failures",
    metadata,
    Column("key", String(400), primary_key=True),
    Column("window_started_at", DateTime(timezone=True), nullable=False),
    Column("failures", Integer, nullable=False),
    Index("ix_sign_in_failures_window_started_at", "window_started_at"),
)
"""Failed sign-ins per account (``account:<email>``) and per address (``address:<ip>``) in
the current window: operational state shared by every API process, not events."""

auth_signing_keys = Table(
    "auth_signing_keys",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("secret", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
"""The key that signs session access tokens when ``FLOWLEDGER_SESSION_SECRET`` is not set:
made by the first API process that needs it, shared by all of them."""

# ------------------------------------------------------------------ run analytics (ADR 0019)

analytics_runs = Table(
    "analytics_runs",
    metadata,
    Column("span", String(8), nullable=False),
    Column("bucket_start", DateTime(timezone=True), nullable=False),
    Column("workflow_id", UUID(as_uuid=True), nullable=False),
    Column("status", String(16), nullable=False),
    Column("runs", BigInteger, nullable=False),
    # The counts in the key: a range is read by an index-only scan (migration 0180).
    PrimaryKeyConstraint(
        "span",
        "bucket_start",
        "workflow_id",
        "status",
        name="analytics_runs_pkey",
        postgresql_include=["runs"],
    ),
    Index("ix_analytics_runs_workflow", "workflow_id", "span", "bucket_start"),
    Index("ix_analytics_runs_empty", "span", postgresql_where=text("runs = 0")),
)
"""Runs per hour and per day of their creation, workflow and current status (the runs
projection keeps it, ADR 0019)."""

analytics_run_durations = Table(
    "analytics_run_durations",
    metadata,
    Column("span", String(8), nullable=False),
    Column("bucket_start", DateTime(timezone=True), nullable=False),
    Column("workflow_id", UUID(as_uuid=True), nullable=False),
    Column("duration_bucket", SmallInteger, nullable=False, autoincrement=False),
    Column("runs", BigInteger, nullable=False),
    PrimaryKeyConstraint(
        "span",
        "bucket_start",
        "workflow_id",
        "duration_bucket",
        name="analytics_run_durations_pkey",
        postgresql_include=["runs"],
    ),
    Index("ix_analytics_run_durations_workflow", "workflow_id", "span", "bucket_start"),
    Index("ix_analytics_run_durations_empty", "span", postgresql_where=text("runs = 0")),
)
"""A histogram of finished runs' durations (log buckets, 2.5% wide) per hour and day."""

analytics_steps = Table(
    "analytics_steps",
    metadata,
    Column("span", String(8), primary_key=True),
    Column("bucket_start", DateTime(timezone=True), primary_key=True),
    Column("workflow_id", UUID(as_uuid=True), primary_key=True),
    Column("step_id", String(255), primary_key=True),
    Column("agent_name", String(255), primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("steps", BigInteger, nullable=False),
    Column("attempts", BigInteger, nullable=False),
    Column("retries", BigInteger, nullable=False),
    Column("failed_attempts", BigInteger, nullable=False),
    Index("ix_analytics_steps_workflow", "workflow_id", "span", "bucket_start"),
    Index("ix_analytics_steps_empty", "span", postgresql_where=text("steps = 0")),
)
"""Steps of the runs created in each hour and day, per workflow, step, agent and status, with
their attempts, retries (attempts after a step's first) and failed attempts."""

analytics_step_durations = Table(
    "analytics_step_durations",
    metadata,
    Column("span", String(8), primary_key=True),
    Column("bucket_start", DateTime(timezone=True), primary_key=True),
    Column("workflow_id", UUID(as_uuid=True), primary_key=True),
    Column("step_id", String(255), primary_key=True),
    Column("agent_name", String(255), primary_key=True),
    Column("duration_bucket", SmallInteger, primary_key=True, autoincrement=False),
    Column("steps", BigInteger, nullable=False),
    Index("ix_analytics_step_durations_workflow", "workflow_id", "span", "bucket_start"),
    Index("ix_analytics_step_durations_empty", "span", postgresql_where=text("steps = 0")),
)
"""A histogram of finished steps' durations per hour and day, workflow, step and agent."""

analytics_agent_steps = Table(
    "analytics_agent_steps",
    metadata,
    Column("span", String(8), nullable=False),
    Column("bucket_start", DateTime(timezone=True), nullable=False),
    Column("agent_name", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("steps", BigInteger, nullable=False),
    Column("attempts", BigInteger, nullable=False),
    Column("retries", BigInteger, nullable=False),
    Column("failed_attempts", BigInteger, nullable=False),
    PrimaryKeyConstraint(
        "span",
        "bucket_start",
        "agent_name",
        "status",
        name="analytics_agent_steps_pkey",
        postgresql_include=["steps", "attempts", "retries", "failed_attempts"],
    ),
    Index("ix_analytics_agent_steps_empty", "span", postgresql_where=text("steps = 0")),
)
"""``analytics_steps`` summed over workflows and steps: what ``GET /analytics/agents`` reads
when the caller may view every workflow (migration 0190)."""

analytics_agent_step_durations = Table(
    "analytics_agent_step_durations",
    metadata,
    Column("span", String(8), nullable=False),
    Column("bucket_start", DateTime(timezone=True), nullable=False),
    Column("agent_name", String(255), nullable=False),
    Column("duration_bucket", SmallInteger, nullable=False, autoincrement=False),
    Column("steps", BigInteger, nullable=False),
    PrimaryKeyConstraint(
        "span",
        "bucket_start",
        "agent_name",
        "duration_bucket",
        name="analytics_agent_step_durations_pkey",
        postgresql_include=["steps"],
    ),
    Index("ix_analytics_agent_step_durations_empty", "span", postgresql_where=text("steps = 0")),
)
"""``analytics_step_durations`` summed over workflows and steps (migration 0190)."""

ANALYTICS_TABLES = (
    analytics_runs,
    analytics_run_durations,
    analytics_steps,
    analytics_step_durations,
    analytics_agent_steps,
    analytics_agent_step_durations,
)
