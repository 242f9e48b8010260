"""webhooks: endpoints, the outbox of deliveries and their attempts, and the trigger that
writes the outbox in the transaction that ends a batch, evaluation or training job

Revision ID: 0015_webhooks
Revises: 0014_training_evaluation
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015_webhooks"
down_revision: str | None = "0014_training_evaluation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A trigger, not calls in Python: every way a status changes (ORM, bulk UPDATE, a future code
# path) writes the event in its own transaction, so none is lost on a crash and none is sent for
# a change that rolled back. One delivery row per endpoint of the project subscribed to the
# event; a project without endpoints gets no row.
OUTBOX_FUNCTION = """
CREATE FUNCTION webhook_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    object_kind text := 'training_job';
    object_id text := NEW.id;
    event_type text;
    sent_at text := to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status IS NOT DISTINCT FROM NEW.status THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'batches' THEN
        object_kind := 'batch';
        IF NEW.kind = 'evaluation' THEN
            object_kind := 'evaluation';
            SELECT id INTO object_id FROM evaluations WHERE batch_id = NEW.id;
        END IF;
    END IF;
    event_type := object_kind || '.' || NEW.status;
    IF object_id IS NULL OR event_type NOT IN (
        'batch.completed', 'batch.failed', 'batch.cancelled',
        'training_job.succeeded', 'training_job.failed', 'training_job.cancelled',
        'evaluation.completed', 'evaluation.failed'
    ) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_deliveries
        (id, endpoint_id, event_type, body, status, attempts, next_attempt_at, created_at)
    SELECT
        'msg_' || replace(gen_random_uuid()::text, '-', ''),
        endpoint.id,
        event_type,
        jsonb_build_object(
            'type', event_type,
            'timestamp', sent_at,
            'data', jsonb_build_object(
                'id', object_id,
                'object', object_kind,
                'status', NEW.status,
                'project', project.name,
                'error', NEW.error
            )
        )::text,
        'pending',
        0,
        now(),
        now()
    FROM webhook_endpoints AS endpoint JOIN projects AS project ON project.id = endpoint.project_id
    WHERE endpoint.project_id = NEW.project_id AND endpoint.events ? event_type;
    RETURN NULL;
END
$$
"""
TABLES = ("batches", "training_jobs")


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("events", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_webhook_endpoints_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index(
        "ix_webhook_endpoints_project_id_created_at_id",
        "webhook_endpoints",
        ["project_id", "created_at", "id"],
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("endpoint_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint_id_created_at_id",
        "webhook_deliveries",
        ["endpoint_id", "created_at", "id"],
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.String(length=64), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_webhook_attempts_delivery_id_webhook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    op.create_index(op.f("ix_webhook_attempts_delivery_id"), "webhook_attempts", ["delivery_id"])
    op.execute(OUTBOX_FUNCTION)
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_webhook_outbox AFTER INSERT OR UPDATE OF status ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION webhook_outbox()"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER {table}_webhook_outbox ON {table}")
    op.execute("DROP FUNCTION webhook_outbox()")
    op.drop_index(op.f("ix_webhook_attempts_delivery_id"), table_name="webhook_attempts")
    op.drop_table("webhook_attempts")
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_index(
        "ix_webhook_deliveries_endpoint_id_created_at_id", table_name="webhook_deliveries"
    )
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_webhook_endpoints_project_id_created_at_id", table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
