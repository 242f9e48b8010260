"""projects, API keys and idempotency keys; every batch, file, dataset, training job and trained
model belongs to a project (rows that existed before go to the project named `default`)

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_PROJECT_ID = "proj_default"
OWNED_TABLES = ("batches", "training_files", "datasets", "training_jobs", "trained_models")


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("name", name=op.f("uq_projects_name")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_api_keys_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_api_keys_project_id"), "api_keys", ["project_id"])
    op.execute(
        "INSERT INTO projects (id, name, created_at) "
        f"VALUES ('{DEFAULT_PROJECT_ID}', 'default', now())"
    )
    for table in OWNED_TABLES:
        op.add_column(table, sa.Column("project_id", sa.String(length=64), nullable=True))
        op.execute(f"UPDATE {table} SET project_id = '{DEFAULT_PROJECT_ID}'")
        op.alter_column(table, "project_id", nullable=False)
        op.create_index(op.f(f"ix_{table}_project_id"), table, ["project_id"])
        op.create_foreign_key(
            op.f(f"fk_{table}_project_id_projects"),
            table,
            "projects",
            ["project_id"],
            ["id"],
            ondelete="CASCADE",
        )
    op.create_table(
        "idempotency_keys",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_idempotency_keys_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "scope", "key", name=op.f("pk_idempotency_keys")),
    )
    op.drop_constraint(op.f("uq_datasets_name_version"), "datasets", type_="unique")
    op.create_unique_constraint(
        op.f("uq_datasets_project_id_name_version"), "datasets", ["project_id", "name", "version"]
    )


def downgrade() -> None:
    op.drop_constraint(op.f("uq_datasets_project_id_name_version"), "datasets", type_="unique")
    op.create_unique_constraint(op.f("uq_datasets_name_version"), "datasets", ["name", "version"])
    for table in reversed(OWNED_TABLES):
        op.drop_constraint(op.f(f"fk_{table}_project_id_projects"), table, type_="foreignkey")
        op.drop_index(op.f(f"ix_{table}_project_id"), table_name=table)
        op.drop_column(table, "project_id")
    op.drop_table("idempotency_keys")
    op.drop_index(op.f("ix_api_keys_project_id"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("projects")
