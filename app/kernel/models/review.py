"""A review: a person's verdict on one answer, kept beside the judge's (never overwriting it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.kernel.db.base import Base, utcnow


class Review(Base):
    __tablename__ = "reviews"
    # The newest review of each answer counts: `sample_id = ? ORDER BY id DESC`.
    __table_args__ = (Index("ix_reviews_sample_id_id", "sample_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    reviewer: Mapped[str] = mapped_column(String(256))
    """The name of the API key that made it (the dashboard's signed-in key)."""
    before: Mapped[dict[str, Any]]
    """What counted before: {"source": "judge" | "review", "final_answer_correct",
    "first_wrong_step", "correction"}."""
    after: Mapped[dict[str, Any]]
    """The person's: {"final_answer_correct", "first_wrong_step", "correction"}."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
