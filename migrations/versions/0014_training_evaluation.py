"""training_evaluation: a training job's before and after evaluations

Revision ID: 0014_training_evaluation
Revises: 0013_evaluations
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_training_evaluation"
down_revision: str | None = "0013_evaluations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("before_evaluation_id", "after_evaluation_id")


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("training_jobs", sa.Column(column, sa.String(length=64), nullable=True))
        op.create_foreign_key(
            op.f(f"fk_training_jobs_{column}_evaluations"),
            "training_jobs",
            "evaluations",
            [column],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    for column in reversed(COLUMNS):
        op.drop_constraint(
            op.f(f"fk_training_jobs_{column}_evaluations"), "training_jobs", type_="foreignkey"
        )
        op.drop_column("training_jobs", column)
