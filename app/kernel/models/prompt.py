"""A prompt: one question of a batch, with its reference answer."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.kernel.db.base import Base


class Prompt(Base):
    __tablename__ = "prompts"
    __table_args__ = (UniqueConstraint("batch_id", "index"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    custom_id: Mapped[str | None] = mapped_column(String(256))
    question: Mapped[str] = mapped_column(Text)
    reference_answer: Mapped[str | None] = mapped_column(Text)
    prompt_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    chunk_id: Mapped[int] = mapped_column(ForeignKey("chunks.id", ondelete="CASCADE"), index=True)
    answers: Mapped[list[Any] | None]
    """Answers given with the prompt, [{"text", "gold"}]: judged instead of sampled."""
