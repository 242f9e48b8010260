"""samples_batch_id_id: a batch's answers in id order straight off an index, for the answers
download and the listing (pages by key: `batch_id = … AND id > … ORDER BY id LIMIT n`); it
replaces the index on batch_id alone, which it covers.

Revision ID: 0017_samples_batch_id_id
Revises: 0016_reviews
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017_samples_batch_id_id"
down_revision: str | None = "0016_reviews"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_samples_batch_id_id", "samples", ["batch_id", "id"])
    op.drop_index(op.f("ix_samples_batch_id"), table_name="samples")


def downgrade() -> None:
    op.create_index(op.f("ix_samples_batch_id"), "samples", ["batch_id"])
    op.drop_index("ix_samples_batch_id_id", table_name="samples")
