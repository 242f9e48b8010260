"""datasets: frozen, named, versioned selections of pairs; pair token counts for their filters

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("preference_pairs", sa.Column("token_count", sa.Integer(), nullable=True))
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("selection", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("counts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_datasets_name_version")),
    )
    op.create_table(
        "dataset_pairs",
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("pair_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_dataset_pairs_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["pair_id"],
            ["preference_pairs.id"],
            name=op.f("fk_dataset_pairs_pair_id_preference_pairs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", "pair_id", name=op.f("pk_dataset_pairs")),
    )


def downgrade() -> None:
    op.drop_table("dataset_pairs")
    op.drop_table("datasets")
    op.drop_column("preference_pairs", "token_count")
