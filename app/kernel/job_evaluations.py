"""A training job's after-evaluation: held back (batch status waiting) until the job's model
exists, then released to the workers; cancelled when the job fails or is cancelled."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.kernel.db.base import utcnow
from app.kernel.models import Batch, Chunk, Evaluation, TrainingJob
from app.kernel.models.statuses import BatchStatus, ChunkStage, RunStatus
from app.kernel.queue import ChunkRoute, ModelRef


def waiting_batch(session: Session, job: TrainingJob) -> Batch | None:
    """The job's after-evaluation batch, locked, while it still waits."""
    if job.after_evaluation_id is None:
        return None
    return session.scalars(
        select(Batch)
        .join(Evaluation, Evaluation.batch_id == Batch.id)
        .where(Evaluation.id == job.after_evaluation_id, Batch.status == BatchStatus.WAITING)
        .with_for_update(of=Batch)
    ).first()


def release_after_evaluation(session: Session, job: TrainingJob) -> list[ChunkRoute]:
    """The job's model is registered: its evaluation samples from it now. Returns the chunks
    to enqueue (the reaper sends them anyway if the caller cannot)."""
    batch = waiting_batch(session, job)
    if batch is None:
        return []
    batch.policy = {**batch.policy, "model": job.output_model}
    batch.status = BatchStatus.QUEUED
    options = batch.options
    model = {
        ChunkStage.SAMPLE: ModelRef.of(options.policy),
        ChunkStage.JUDGE: ModelRef.of(options.judge),
    }
    chunks = session.execute(
        select(Chunk.id, Chunk.stage).where(
            Chunk.batch_id == batch.id, Chunk.status == RunStatus.QUEUED
        )
    ).all()
    return [
        ChunkRoute(chunk_id, ChunkStage(stage), model[ChunkStage(stage)])
        for chunk_id, stage in chunks
    ]


def cancel_after_evaluation(session: Session, job: TrainingJob) -> bool:
    """The job made no model: its waiting evaluation will never run. True if one was cancelled."""
    batch = waiting_batch(session, job)
    if batch is None:
        return False
    now = utcnow()
    session.execute(
        update(Chunk)
        .where(Chunk.batch_id == batch.id, Chunk.status == RunStatus.QUEUED)
        .values(status=RunStatus.CANCELLED, finished_at=now)
    )
    batch.status = BatchStatus.CANCELLED
    batch.cancelling_at = batch.cancelling_at or now
    batch.cancelled_at = now
    batch.error = f"training job {job.id} {job.status}: there is no model to evaluate"
    return True
