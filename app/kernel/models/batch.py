"""A batch: one user's submission of prompts, with the settings that apply to all of them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.kernel.batch_options import BatchSettings
from app.kernel.db.base import Base, utcnow
from app.kernel.models.statuses import BatchKind, BatchStatus


def new_batch_id() -> str:
    return f"batch_{uuid.uuid4().hex}"


class Batch(Base):
    __tablename__ = "batches"
    __table_args__ = (
        # A project's newest batches (the list), and its open ones (the 429 check), without
        # reading all its history.
        Index("ix_batches_project_id_created_at_id", "project_id", "created_at", "id"),
        Index("ix_batches_project_id_status", "project_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_batch_id)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default=BatchStatus.VALIDATING, index=True)
    kind: Mapped[str] = mapped_column(
        String(16), default=BatchKind.BATCH, server_default=BatchKind.BATCH.value
    )
    """batch (a user's) or evaluation (hidden: it carries an evaluation's questions)."""
    policy: Mapped[dict[str, Any]]
    judge: Mapped[dict[str, Any]]
    pairing: Mapped[dict[str, Any]]
    batch_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    total_prompts: Mapped[int] = mapped_column(Integer, default=0)
    chunk_size: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    in_progress_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finalizing_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelling_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def options(self) -> BatchSettings:
        """The policy, judge and pairing options as the types the API validated them with."""
        return BatchSettings.of_row(self.policy, self.judge, self.pairing)
