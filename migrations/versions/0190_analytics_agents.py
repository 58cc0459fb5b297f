"""Per-agent run analytics: ``analytics_agent_steps`` and ``analytics_agent_step_durations`` sum
``analytics_steps`` and ``analytics_step_durations`` over workflows and steps, so that
``GET /analytics/agents`` over a month reads a few thousand rows instead of every workflow's
and step's (about 180,000 step-duration rows at a million runs). The runs projection keeps them
in the same statement as the others (ADR 0019); this fills them from the step tables, which
hold the same sums.

Revision ID: 0190
Revises: 0180
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0190"
down_revision: str | None = "0180"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)


def _counted(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger(), nullable=False)


def _table(name: str, key: sa.Column, counts: list[sa.Column]) -> None:
    counted = [c.name for c in counts]
    op.create_table(
        name,
        sa.Column("span", sa.String(8), nullable=False),
        sa.Column("bucket_start", TIME, nullable=False),
        sa.Column("agent_name", sa.String(255), nullable=False),
        key,
        *counts,
        sa.PrimaryKeyConstraint(
            "span",
            "bucket_start",
            "agent_name",
            key.name,
            name=f"{name}_pkey",
            postgresql_include=counted,
        ),
    )
    op.create_index(
        f"ix_{name}_empty", name, ["span"], postgresql_where=sa.text(f"{counted[0]} = 0")
    )


def upgrade() -> None:
    _table(
        "analytics_agent_steps",
        sa.Column("status", sa.String(16), nullable=False),
        [_counted("steps"), _counted("attempts"), _counted("retries"), _counted("failed_attempts")],
    )
    _table(
        "analytics_agent_step_durations",
        sa.Column("duration_bucket", sa.SmallInteger(), nullable=False, autoincrement=False),
        [_counted("steps")],
    )
    op.execute(
        "INSERT INTO analytics_agent_steps "
        "(span, bucket_start, agent_name, status, steps, attempts, retries, failed_attempts) "
        "SELECT span, bucket_start, agent_name, status, sum(steps), sum(attempts), "
        "sum(retries), sum(failed_attempts) FROM analytics_steps GROUP BY 1, 2, 3, 4 "
        "HAVING sum(steps) <> 0"
    )
    op.execute(
        "INSERT INTO analytics_agent_step_durations "
        "(span, bucket_start, agent_name, duration_bucket, steps) "
        "SELECT span, bucket_start, agent_name, duration_bucket, sum(steps) "
        "FROM analytics_step_durations GROUP BY 1, 2, 3, 4 HAVING sum(steps) <> 0"
    )


def downgrade() -> None:
    op.drop_table("analytics_agent_step_durations")
    op.drop_table("analytics_agent_steps")
