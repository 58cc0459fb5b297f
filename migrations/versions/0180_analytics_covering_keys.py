"""The run analytics' primary keys carry the run counts (``INCLUDE (runs)``): a range of
``analytics_runs`` and ``analytics_run_durations`` is read by index-only scans of the keys,
which lead with the span and the bucket's start, instead of visiting a heap page for nearly
every row (a month of every workflow's durations: about 50,000 rows over 4,600 pages).

Revision ID: 0180
Revises: 0170
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0180"
down_revision: str | None = "0170"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYS = {
    "analytics_runs": "span, bucket_start, workflow_id, status",
    "analytics_run_durations": "span, bucket_start, workflow_id, duration_bucket",
}


def _rekey(include: str) -> None:
    for table, columns in KEYS.items():
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey, "
            f"ADD CONSTRAINT {table}_pkey PRIMARY KEY ({columns}){include}"
        )


def upgrade() -> None:
    _rekey(" INCLUDE (runs)")


def downgrade() -> None:
    _rekey("")
