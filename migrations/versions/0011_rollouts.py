"""prefix rollouts: M continuations per step prefix of a wrong answer and their successes

Revision ID: 0011_rollouts
Revises: 0010_download_pages
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011_rollouts"
down_revision: str | None = "0010_download_pages"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "prefix_rollouts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("sample_id", sa.BigInteger(), nullable=False),
        sa.Column("prefix_steps", sa.Integer(), nullable=False),
        sa.Column("rollouts", sa.Integer(), nullable=False),
        sa.Column("successes", sa.Integer(), nullable=False),
        sa.Column("unknown", sa.Integer(), nullable=False),
        sa.Column("successful", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_prefix_rollouts_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sample_id"],
            ["samples.id"],
            name=op.f("fk_prefix_rollouts_sample_id_samples"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prefix_rollouts")),
        sa.UniqueConstraint(
            "sample_id", "prefix_steps", name=op.f("uq_prefix_rollouts_sample_id_prefix_steps")
        ),
    )
    op.create_index(
        op.f("ix_prefix_rollouts_batch_id"), "prefix_rollouts", ["batch_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_prefix_rollouts_batch_id"), table_name="prefix_rollouts")
    op.drop_table("prefix_rollouts")
