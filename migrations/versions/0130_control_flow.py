"""Control flow: step instances of maps and loops, waits, signals, child runs, pauses.

* ``runs`` links a child run to its parent run and step (``parent_run_id``, ``parent_step_id``);
* ``run_steps`` holds a row per step instance (``each[3].price``: keys grow with nesting, so
  ``step_id`` becomes ``text`` here and in ``run_step_attempts`` and ``run_logs``), with its
  ``kind``, the map or loop instance it runs in (``parent_step_id``, ``item_index``), how many
  items or iterations a map or loop has begun (``items``), the child run it follows, the signal
  it waits for and until when (``wake_at``); steps that call no agent have no ``agent_name``;
* ``run_body_steps`` keeps, per run, the steps of its plan's map and loop bodies, from which
  the runs projection makes each instance's row;
* ``workflow_steps`` lists steps of every kind;
* ``executor_active_runs`` says when each run needs driving (``wake_at``) and which run is its
  parent (to drive the parent when a child ends).

Revision ID: 0130
Revises: 0090
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0130"
down_revision: str | None = "0090"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = postgresql.UUID(as_uuid=True)


def upgrade() -> None:
    op.add_column("runs", sa.Column("parent_run_id", UUID))
    op.add_column("runs", sa.Column("parent_step_id", sa.Text()))
    op.create_index("ix_runs_parent_run_id", "runs", ["parent_run_id"])

    op.alter_column("run_steps", "step_id", type_=sa.Text())
    op.alter_column("run_steps", "agent_name", nullable=True)
    op.add_column(
        "run_steps", sa.Column("kind", sa.String(16), nullable=False, server_default="agent")
    )
    op.add_column("run_steps", sa.Column("parent_step_id", sa.Text()))
    op.add_column("run_steps", sa.Column("item_index", sa.Integer()))
    op.add_column("run_steps", sa.Column("items", sa.Integer()))
    op.add_column("run_steps", sa.Column("child_run_id", UUID))
    op.add_column("run_steps", sa.Column("signal", sa.Text()))
    op.add_column("run_steps", sa.Column("wake_at", sa.DateTime(timezone=True)))
    op.alter_column("run_step_attempts", "step_id", type_=sa.Text())
    op.add_column("run_step_attempts", sa.Column("child_run_id", UUID))
    op.alter_column("run_logs", "step_id", type_=sa.Text())
    op.create_table(
        "run_body_steps",
        sa.Column("run_id", UUID, primary_key=True),
        sa.Column("step_id", sa.String(100), primary_key=True),
        sa.Column("step_order", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("agent_name", sa.String(255)),
        sa.Column("depends_on", postgresql.JSONB(), nullable=False),
    )

    op.alter_column("workflow_steps", "agent_name", nullable=True)
    op.add_column(
        "workflow_steps", sa.Column("kind", sa.String(16), nullable=False, server_default="agent")
    )

    op.add_column("executor_active_runs", sa.Column("wake_at", sa.DateTime(timezone=True)))
    op.add_column("executor_active_runs", sa.Column("parent_run_id", UUID))
    op.create_index("ix_executor_active_runs_wake_at", "executor_active_runs", ["wake_at"])


def downgrade() -> None:
    op.drop_index("ix_executor_active_runs_wake_at", table_name="executor_active_runs")
    op.drop_column("executor_active_runs", "parent_run_id")
    op.drop_column("executor_active_runs", "wake_at")
    op.drop_column("workflow_steps", "kind")
    op.execute("DELETE FROM workflow_steps WHERE agent_name IS NULL")
    op.alter_column("workflow_steps", "agent_name", nullable=False)
    op.drop_table("run_body_steps")
    op.execute("DELETE FROM run_logs WHERE length(step_id) > 255")
    op.alter_column("run_logs", "step_id", type_=sa.String(255))
    op.drop_column("run_step_attempts", "child_run_id")
    op.execute("DELETE FROM run_step_attempts WHERE length(step_id) > 255")
    op.alter_column("run_step_attempts", "step_id", type_=sa.String(255))
    for column in ("wake_at", "signal", "child_run_id", "items", "item_index", "parent_step_id"):
        op.drop_column("run_steps", column)
    op.drop_column("run_steps", "kind")
    op.execute("DELETE FROM run_steps WHERE agent_name IS NULL OR length(step_id) > 255")
    op.alter_column("run_steps", "agent_name", nullable=False)
    op.alter_column("run_steps", "step_id", type_=sa.String(255))
    op.drop_index("ix_runs_parent_run_id", table_name="runs")
    op.drop_column("runs", "parent_step_id")
    op.drop_column("runs", "parent_run_id")
