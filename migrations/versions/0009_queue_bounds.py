"""when a queued chunk's job went to Redis (chunks.enqueued_at), and partial indexes so the
reaper and the per-project chunk limit read only open chunks

Revision ID: 0009_queue_bounds
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_queue_bounds"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Null: every chunk queued before this revision is sent once more by the next reaper pass.
    op.add_column("chunks", sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_chunks_queued_enqueued_at",
        "chunks",
        ["enqueued_at"],
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index(
        "ix_chunks_open_batch_id",
        "chunks",
        ["batch_id"],
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )


def downgrade() -> None:
    op.drop_index("ix_chunks_open_batch_id", table_name="chunks")
    op.drop_index("ix_chunks_queued_enqueued_at", table_name="chunks")
    op.drop_column("chunks", "enqueued_at")
