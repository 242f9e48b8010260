"""answers given with a prompt, where each answer came from, why it ended, and its gold label:
prompts.answers, samples.source / finish_reason / gold

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("prompts", sa.Column("answers", postgresql.JSONB(), nullable=True))
    # Every answer stored before this revision was sampled by the policy.
    op.add_column(
        "samples",
        sa.Column("source", sa.String(length=16), server_default="policy", nullable=False),
    )
    op.add_column("samples", sa.Column("finish_reason", sa.String(length=16), nullable=True))
    op.add_column("samples", sa.Column("gold", postgresql.JSONB(), nullable=True))
    op.create_index(
        "ix_samples_batch_id_gold",
        "samples",
        ["batch_id"],
        postgresql_where=sa.text("gold IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_samples_batch_id_gold", table_name="samples")
    op.drop_column("samples", "gold")
    op.drop_column("samples", "finish_reason")
    op.drop_column("samples", "source")
    op.drop_column("prompts", "answers")
