"""An evaluation: a model answering held-out questions, run as a hidden batch of kind
'evaluation' (its prompts, chunks, samples and verdicts go through the batch machinery)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.kernel.db.base import Base, utcnow


def new_evaluation_id() -> str:
    return f"eval_{uuid.uuid4().hex}"


class Evaluation(Base):
    __tablename__ = "evaluations"
    __table_args__ = (
        # A project's newest evaluations, and those of one model (the list and ?model=).
        Index("ix_evaluations_project_id_created_at_id", "project_id", "created_at", "id"),
        Index("ix_evaluations_project_id_model", "project_id", "model"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_evaluation_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), unique=True)
    """The hidden batch that carries the questions through the workers."""
    model: Mapped[str] = mapped_column(String(512))
    mode: Mapped[str] = mapped_column(String(8))
    """cot (the policy's step-by-step prompt) or direct (answer only)."""
    samples: Mapped[int] = mapped_column(Integer)
    source_kind: Mapped[str] = mapped_column(String(8))
    """Where the questions came from: prompts (inline), file or dataset."""
    source_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
