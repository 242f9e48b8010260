"""decontamination: what a dataset's check against eval files found, and an eval file's
overlap with the project's datasets

Revision ID: 0012_decontamination
Revises: 0011_rollouts
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012_decontamination"
down_revision: str | None = "0011_rollouts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "datasets",
        sa.Column("contamination", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.add_column(
        "training_files",
        sa.Column("overlap", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("training_files", "overlap")
    op.drop_column("datasets", "contamination")
