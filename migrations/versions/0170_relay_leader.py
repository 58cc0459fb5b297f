"""The Kafka relay's leader: several relay processes may run, one publishes (it holds a session
advisory lock) and the others stand by; ``relay_state.leader`` shows which one leads
(``host:pid``), for ``/health/ready`` and ``flowledger events status``.

Revision ID: 0170
Revises: 0160
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0170"
down_revision: str | None = "0160"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("relay_state", sa.Column("leader", sa.String(255)))


def downgrade() -> None:
    op.drop_column("relay_state", "leader")
