"""A preference pair in TRL's conversational format, with where it came from."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.kernel.db.base import Base, utcnow


class PreferencePair(Base):
    __tablename__ = "preference_pairs"
    # The natural key: one batch never holds the same live (kind, prompt, chosen, rejected)
    # twice; a withdrawn pair may share it with the reviewed pair that replaced it.
    __table_args__ = (
        Index(
            "uq_preference_pairs_batch_id_content_hash",
            "batch_id",
            "content_hash",
            unique=True,
            postgresql_where=text("withdrawn_at IS NULL"),
        ),
        # A download reads a batch's pairs a page at a time, by id: `batch_id = ? AND id > ?`.
        Index("ix_preference_pairs_batch_id_id", "batch_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    prompt: Mapped[list[Any]]
    chosen: Mapped[list[Any]]
    rejected: Mapped[list[Any]]
    chosen_sample_id: Mapped[int | None] = mapped_column(
        ForeignKey("samples.id", ondelete="CASCADE")
    )
    rejected_sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"))
    content_hash: Mapped[str] = mapped_column(String(64))
    token_count: Mapped[int | None] = mapped_column(Integer)
    """Prompt plus the longer side under the policy tokenizer (dataset filters use it)."""
    provenance: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """Set when a review of one of its answers replaced it: left out of the batch's pairs and
    of new datasets, kept in the datasets frozen before."""
