"""A chunk: the unit of work a worker takes from the queue (a run of a batch's prompts)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.kernel.db.base import Base, utcnow
from app.kernel.models.statuses import ChunkStage, RunStatus


class Chunk(Base):
    __tablename__ = "chunks"
    __table_args__ = (
        UniqueConstraint("batch_id", "index"),
        # The reaper's pass reads only queued chunks whose job is unconfirmed or expired.
        Index(
            "ix_chunks_queued_enqueued_at",
            "enqueued_at",
            postgresql_where=text("status = 'queued'"),
        ),
        # A batch's open chunks (is it idle? how many does a project have queued?), found
        # without reading its finished ones.
        Index(
            "ix_chunks_open_batch_id",
            "batch_id",
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.QUEUED, index=True)
    stage: Mapped[str] = mapped_column(
        String(8), default=ChunkStage.SAMPLE, server_default="sample"
    )
    """Which queue the chunk waits in or runs from: sampling, then judging."""
    n_prompts: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    """Claims of the current stage (a run that failed or was cut off counts); bounded by
    CHUNK_MAX_ATTEMPTS."""
    error: Mapped[str | None] = mapped_column(Text)
    """Why the last run failed (kept while the chunk waits for another attempt)."""
    stats: Mapped[dict[str, Any] | None]
    """What the last run did: token usage, judge calls, pairs dropped by reason."""
    worker_name: Mapped[str | None] = mapped_column(String(256))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """While running: renewed by its worker; once past, the reaper re-queues the chunk."""
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """While queued: when its job was last put in Redis (null: not confirmed yet). The reaper
    sends a chunk again when this is null or older than QUEUED_JOB_TTL_S (its job expired)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
