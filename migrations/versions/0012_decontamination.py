"""decontamination: what a dataset's check against eval files found, an eval file's overlap
with the project's datasets, and dataset pairs looked up by pair id

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
    op.create_index(op.f("ix_dataset_pairs_pair_id"), "dataset_pairs", ["pair_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_dataset_pairs_pair_id"), table_name="dataset_pairs")
    op.drop_column("training_files", "overlap")
    op.drop_column("datasets", "contamination")
