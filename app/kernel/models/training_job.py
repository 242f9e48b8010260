"""Training jobs, what they report while they run, and the models they produce."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.kernel.db.base import Base, utcnow
from app.kernel.models.statuses import RunStatus
from app.kernel.training_options import TrainingSettings


def new_training_job_id() -> str:
    return f"ftjob_{uuid.uuid4().hex}"


class TrainingJob(Base):
    __tablename__ = "training_jobs"
    __table_args__ = (
        Index("ix_training_jobs_project_id_created_at_id", "project_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_training_job_id)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    method: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.QUEUED, index=True)
    base_model: Mapped[str] = mapped_column(String(1024))
    """As the caller named it: a registered name, a produced model, a folder or a hub id."""
    output_model: Mapped[str] = mapped_column(String(256), unique=True)
    """The id the trained model gets in /v1/models (registered when the job succeeds)."""
    data: Mapped[dict[str, Any]]
    """{"datasets": [...], "files": [...]}"""
    hyperparameters: Mapped[dict[str, Any]]
    """Every value the run uses, defaults filled in at creation."""
    lora: Mapped[dict[str, Any] | None]
    distributed: Mapped[dict[str, Any] | None]
    result: Mapped[dict[str, Any] | None]
    """What the finished run reports: steps, train loss, runtime, examples, tokens."""
    error: Mapped[str | None] = mapped_column(Text)
    worker_name: Mapped[str | None] = mapped_column(String(256))
    output_dir: Mapped[str | None] = mapped_column(String(1024))
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """Renewed by the running trainer; a stale one means the trainer died."""
    before_evaluation_id: Mapped[str | None] = mapped_column(
        ForeignKey("evaluations.id", ondelete="SET NULL")
    )
    """The base model's evaluation (maybe an earlier job's, reused) when the job asked for one."""
    after_evaluation_id: Mapped[str | None] = mapped_column(
        ForeignKey("evaluations.id", ondelete="SET NULL")
    )
    """The output model's evaluation: waiting until the job succeeds, cancelled if it does not."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def options(self) -> TrainingSettings:
        """Method, hyperparameters, LoRA and distribution as the types the API validated."""
        return TrainingSettings.of_row(
            self.method, self.hyperparameters, self.lora, self.distributed
        )


class TrainingEvent(Base):
    """One thing a job reported: a step's metrics, an evaluation, a checkpoint, a status change."""

    __tablename__ = "training_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(
        ForeignKey("training_jobs.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    """metrics | eval | checkpoint | status"""
    step: Mapped[int | None] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any] | None]
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TrainingCheckpoint(Base):
    __tablename__ = "training_checkpoints"

    job_id: Mapped[str] = mapped_column(
        ForeignKey("training_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    loss: Mapped[float | None] = mapped_column(Float)
    """The last training loss logged at or before this step."""
    path: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TrainedModel(Base):
    """A model a training job produced; usable as a batch's policy or judge by its id."""

    __tablename__ = "trained_models"

    id: Mapped[str] = mapped_column(String(256), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    training_job_id: Mapped[str] = mapped_column(
        ForeignKey("training_jobs.id", ondelete="CASCADE"), unique=True
    )
    base_model: Mapped[str] = mapped_column(String(1024))
    method: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
