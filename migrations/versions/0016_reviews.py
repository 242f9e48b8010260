"""reviews: a person's verdicts on answers; pairs a review replaced are withdrawn, not deleted

Revision ID: 0016_reviews
Revises: 0015_webhooks
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016_reviews"
down_revision: str | None = "0015_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NATURAL_KEY = "uq_preference_pairs_batch_id_content_hash"


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("sample_id", sa.BigInteger(), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("reviewer", sa.String(length=256), nullable=False),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_reviews_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sample_id"],
            ["samples.id"],
            name=op.f("fk_reviews_sample_id_samples"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_reviews_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
    )
    op.create_index(op.f("ix_reviews_batch_id"), "reviews", ["batch_id"])
    op.create_index("ix_reviews_sample_id_id", "reviews", ["sample_id", "id"])
    op.add_column(
        "preference_pairs", sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.drop_constraint(NATURAL_KEY, "preference_pairs", type_="unique")
    op.create_index(
        NATURAL_KEY,
        "preference_pairs",
        ["batch_id", "content_hash"],
        unique=True,
        postgresql_where=sa.text("withdrawn_at IS NULL"),
    )


def downgrade() -> None:
    # Withdrawn pairs would break the full natural key: they go (frozen datasets lose them).
    op.execute("DELETE FROM preference_pairs WHERE withdrawn_at IS NOT NULL")
    op.drop_index(NATURAL_KEY, table_name="preference_pairs")
    op.create_unique_constraint(NATURAL_KEY, "preference_pairs", ["batch_id", "content_hash"])
    op.drop_column("preference_pairs", "withdrawn_at")
    op.drop_index("ix_reviews_sample_id_id", table_name="reviews")
    op.drop_index(op.f("ix_reviews_batch_id"), table_name="reviews")
    op.drop_table("reviews")
