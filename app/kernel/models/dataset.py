"""A dataset: a named, versioned, frozen selection of preference pairs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.kernel.db.base import Base, utcnow


def new_dataset_id() -> str:
    return f"ds_{uuid.uuid4().hex}"


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("project_id", "name", "version"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_dataset_id)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(256))
    version: Mapped[int] = mapped_column(Integer)
    selection: Mapped[dict[str, Any]]
    """What was asked for: batch ids, kinds, filters."""
    counts: Mapped[dict[str, Any]]
    """Pairs frozen in, by kind, and how many the filters left out."""
    contamination: Mapped[dict[str, Any] | None]
    """What checking the pairs against eval files found (and dropped); None if not asked."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DatasetPair(Base):
    """Membership: which pairs a dataset froze (pairs themselves never change)."""

    __tablename__ = "dataset_pairs"

    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    pair_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("preference_pairs.id", ondelete="CASCADE"), primary_key=True
    )
