"""evaluations: a model on held-out questions, carried by a hidden batch of kind 'evaluation'

Revision ID: 0013_evaluations
Revises: 0012_decontamination
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_evaluations"
down_revision: str | None = "0012_decontamination"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "batches",
        sa.Column("kind", sa.String(length=16), server_default="batch", nullable=False),
    )
    op.create_table(
        "evaluations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=512), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("source_kind", sa.String(length=8), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_evaluations_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_evaluations_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluations")),
        sa.UniqueConstraint("batch_id", name=op.f("uq_evaluations_batch_id")),
    )
    op.create_index(
        "ix_evaluations_project_id_created_at_id",
        "evaluations",
        ["project_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_evaluations_project_id_model", "evaluations", ["project_id", "model"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_evaluations_project_id_model", table_name="evaluations")
    op.drop_index("ix_evaluations_project_id_created_at_id", table_name="evaluations")
    op.drop_table("evaluations")
    op.drop_column("batches", "kind")
