"""an index for reading a batch's pairs a page at a time in id order (downloads):
preference_pairs (batch_id, id)

Revision ID: 0010_download_pages
Revises: 0009_queue_bounds
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_download_pages"
down_revision: str | None = "0009_queue_bounds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_preference_pairs_batch_id_id", "preference_pairs", ["batch_id", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_preference_pairs_batch_id_id", table_name="preference_pairs")
