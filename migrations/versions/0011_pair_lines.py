"""the JSON text of each pair's messages and provenance, kept beside their jsonb (generated
columns): a download concatenates stored text instead of writing jsonb out for every row

Revision ID: 0011_pair_lines
Revises: 0010_download_pages
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011_pair_lines"
down_revision: str | None = "0010_download_pages"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("prompt", "chosen", "rejected", "provenance")


def upgrade() -> None:
    # One ALTER TABLE: the table is rewritten once, which fills the columns of existing pairs.
    op.execute(
        "ALTER TABLE preference_pairs "
        + ", ".join(
            f"ADD COLUMN {name}_json text GENERATED ALWAYS AS ({name}::text) STORED"
            for name in COLUMNS
        )
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE preference_pairs " + ", ".join(f"DROP COLUMN {name}_json" for name in COLUMNS)
    )
