"""An uploaded training file: JSONL for continual pretraining, instruction tuning or DPO."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.kernel.db.base import Base, utcnow


def new_file_id() -> str:
    return f"file_{uuid.uuid4().hex}"


class TrainingFile(Base):
    """The row is the record; the validated bytes live in the files folder under its id."""

    __tablename__ = "training_files"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_file_id)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(16), index=True)
    filename: Mapped[str] = mapped_column(String(512))
    bytes: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    overlap: Mapped[dict[str, Any] | None]
    """An eval file's overlap with the project's datasets when it was uploaded; else None."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
