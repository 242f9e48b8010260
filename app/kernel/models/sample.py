"""A sample: one answer to a prompt, written by the policy or given with the prompt."""

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
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.kernel.db.base import Base, utcnow
from app.kernel.models.statuses import SampleSource


class Sample(Base):
    __tablename__ = "samples"
    __table_args__ = (
        UniqueConstraint("prompt_id", "sample_index"),
        # A batch's gold-labelled answers (its calibration, read on every poll) without
        # reading the rest of a big batch.
        Index("ix_samples_batch_id_gold", "batch_id", postgresql_where=text("gold IS NOT NULL")),
        # A batch's answers in id order (pages by key: the listing, the answers download).
        Index("ix_samples_batch_id_id", "batch_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    sample_index: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    policy_model: Mapped[str] = mapped_column(String(512))
    policy_prompt_version: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    source: Mapped[str] = mapped_column(
        String(16), default=SampleSource.POLICY, server_default=SampleSource.POLICY.value
    )
    finish_reason: Mapped[str | None] = mapped_column(String(16))
    """"stop" or "length" (cut at max_tokens) for a sampled answer; None for a given one."""
    # none_as_null: an answer without a label stores SQL NULL, not JSON null, so the partial
    # index and `gold IS NOT NULL` see only labelled answers.
    gold: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    """A given answer's gold label: {"correct": bool, "first_wrong_step": int | None}."""
