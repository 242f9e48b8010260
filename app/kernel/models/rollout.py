"""A prefix rollout: M continuations of one answer from one of its step prefixes, and how many
of them reached a correct final answer (the Monte-Carlo estimate of that prefix)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.kernel.db.base import Base, utcnow


class PrefixRollout(Base):
    __tablename__ = "prefix_rollouts"
    __table_args__ = (UniqueConstraint("sample_id", "prefix_steps"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"))
    prefix_steps: Mapped[int] = mapped_column(Integer)
    """How many of the answer's steps the prefix holds (0: the question alone)."""
    rollouts: Mapped[int] = mapped_column(Integer)
    successes: Mapped[int] = mapped_column(Integer)
    unknown: Mapped[int] = mapped_column(Integer)
    """Continuations cut at max_tokens (or left unjudged): neither success nor failure."""
    successful: Mapped[list[str]] = mapped_column(JSONB)
    """The texts of the successful continuations (what follows the prefix)."""
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
