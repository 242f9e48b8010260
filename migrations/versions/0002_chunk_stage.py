"""chunks.stage: sample or judge, so sampling and judging can run on different workers

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "chunks",
        sa.Column("stage", sa.String(length=8), nullable=False, server_default="sample"),
    )


def downgrade() -> None:
    op.drop_column("chunks", "stage")
