"""indexes for a project's newest batches and training jobs, and its open batches: the list and
the open-batch limit no longer read a project's whole history

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_batches_project_id_created_at_id", "batches", ["project_id", "created_at", "id"]
    )
    op.create_index("ix_batches_project_id_status", "batches", ["project_id", "status"])
    op.create_index(
        "ix_training_jobs_project_id_created_at_id",
        "training_jobs",
        ["project_id", "created_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_training_jobs_project_id_created_at_id", table_name="training_jobs")
    op.drop_index("ix_batches_project_id_status", table_name="batches")
    op.drop_index("ix_batches_project_id_created_at_id", table_name="batches")
