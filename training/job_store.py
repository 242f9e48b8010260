"""A training job's rows as the trainer moves them: claim, heartbeat, events, checkpoints, finish.

Every status change is conditional on the status it leaves, so two processes that disagree
(a supervisor that outlived its trainer, a reconciler) cannot overwrite each other. Every write
runs through the process context's transaction, so it outlives a Postgres restart the way a
chunk's writes do (retried up to DB_RETRY_S).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from app.kernel.context import ProcessContext
from app.kernel.db.base import utcnow
from app.kernel.job_evaluations import cancel_after_evaluation, release_after_evaluation
from app.kernel.models import TrainedModel, TrainingCheckpoint, TrainingEvent, TrainingJob
from app.kernel.models.statuses import RunStatus
from app.kernel.queue import ChunkRoute, enqueue_chunks, mark_enqueued

log = logging.getLogger(__name__)


def claim_job(context: ProcessContext, job_id: str, *, output_dir: str) -> bool:
    """queued → running for this worker; False when the job is not queued (cancelled, taken)."""
    return context.transaction(
        lambda session: claim_queued_job(
            session, job_id, worker_name=context.name, output_dir=output_dir
        )
    )


def claim_queued_job(session: Session, job_id: str, *, worker_name: str, output_dir: str) -> bool:
    now = utcnow()
    claimed = session.execute(  # type: ignore[attr-defined]
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status == RunStatus.QUEUED)
        .values(
            status=RunStatus.RUNNING,
            worker_name=worker_name,
            output_dir=output_dir,
            started_at=now,
            heartbeat_at=now,
        )
    ).rowcount
    if claimed:
        session.add(
            TrainingEvent(job_id=job_id, kind="status", message=f"running on {worker_name}")
        )
    return bool(claimed)


def renew_heartbeat(context: ProcessContext, job_id: str) -> None:
    """The running job's trainer is alive now."""
    context.transaction(
        lambda session: session.execute(
            update(TrainingJob)
            .where(TrainingJob.id == job_id, TrainingJob.status == RunStatus.RUNNING)
            .values(heartbeat_at=utcnow())
        )
    )


def cancel_requested(context: ProcessContext, job_id: str) -> bool:
    requested = context.transaction(
        lambda session: session.scalar(
            select(TrainingJob.cancel_requested_at).where(TrainingJob.id == job_id)
        )
    )
    return requested is not None


def add_events(context: ProcessContext, job_id: str, events: Sequence[dict[str, Any]]) -> None:
    """Store events ({kind, step, metrics, message, created_at}) in one INSERT."""
    if events:
        rows = [{"job_id": job_id, **event} for event in events]
        context.transaction(lambda session: session.execute(insert(TrainingEvent), rows))


def add_checkpoint(
    context: ProcessContext,
    job_id: str,
    *,
    step: int,
    loss: float | None,
    path: str,
    kept_steps: Collection[int] | None = None,
) -> None:
    """Record a saved checkpoint; with `kept_steps` (the checkpoints still on disk after the
    trainer's rotation), forget the ones it deleted."""
    context.transaction(
        lambda session: store_checkpoint(
            session, job_id, step=step, loss=loss, path=path, kept_steps=kept_steps
        )
    )


def store_checkpoint(
    session: Session,
    job_id: str,
    *,
    step: int,
    loss: float | None,
    path: str,
    kept_steps: Collection[int] | None = None,
) -> None:
    if kept_steps is not None:
        session.execute(
            delete(TrainingCheckpoint).where(
                TrainingCheckpoint.job_id == job_id,
                TrainingCheckpoint.step.not_in([*kept_steps, step]),
            )
        )
    session.merge(TrainingCheckpoint(job_id=job_id, step=step, loss=loss, path=path))
    session.add(
        TrainingEvent(
            job_id=job_id,
            kind="checkpoint",
            step=step,
            metrics=None if loss is None else {"loss": loss},
            message=path,
        )
    )


def last_checkpoint(session: Session, job_id: str) -> TrainingCheckpoint | None:
    return session.scalars(
        select(TrainingCheckpoint)
        .where(TrainingCheckpoint.job_id == job_id)
        .order_by(TrainingCheckpoint.step.desc())
        .limit(1)
    ).first()


def finish_job(
    context: ProcessContext,
    job_id: str,
    status: RunStatus,
    *,
    error: str | None = None,
    result: dict[str, Any] | None = None,
    model_path: str | None = None,
) -> bool:
    """running → a final status, registering the produced model when it succeeded (in the same
    transaction, so a finished job's model is never left unregistered).

    A failure names the last checkpoint, so the work done so far can be picked up from it.
    The job's after-evaluation, if it asked for one, is released to the workers (succeeded) or
    cancelled (no model).
    """
    released: list[ChunkRoute] = []
    finished = context.transaction(
        lambda session: finish_running_job(
            session,
            job_id,
            status,
            error=error,
            result=result,
            model_path=model_path,
            released=released,
        )
    )
    if released:
        send_released_evaluation(context, released)
    return finished


def send_released_evaluation(context: ProcessContext, routes: list[ChunkRoute]) -> None:
    """Enqueue a released evaluation's chunks; if Redis fails, the reaper sends them later."""
    settings = context.settings
    try:
        enqueue_chunks(
            context.redis,
            settings.queue_name,
            routes,
            timeout_s=settings.chunk_timeout_s,
            ttl_s=settings.queued_job_ttl_s,
        )
    except RedisError as problem:
        log.warning("after-evaluation: could not enqueue (the reaper will): %s", problem)
        return
    context.transaction(lambda session: mark_enqueued(session, routes))


def finish_running_job(
    session: Session,
    job_id: str,
    status: RunStatus,
    *,
    error: str | None,
    result: dict[str, Any] | None,
    model_path: str | None,
    released: list[ChunkRoute] | None = None,
) -> bool:
    """As finish_job, in the caller's transaction; `released` receives the chunks of the
    after-evaluation this releases, to enqueue once committed."""
    job = session.scalars(
        select(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status == RunStatus.RUNNING)
        .with_for_update()
    ).first()
    if job is None:
        return False
    if error is not None:
        checkpoint = last_checkpoint(session, job_id)
        where = (
            f"last checkpoint: step {checkpoint.step} at {checkpoint.path}"
            if checkpoint
            else "no checkpoint was saved"
        )
        error = f"{error} ({where})"
    job.status = status
    job.error = error
    job.result = result
    job.finished_at = utcnow()
    message = status.value if error is None else f"{status.value}: {error}"
    session.add(TrainingEvent(job_id=job_id, kind="status", message=message))
    if status == RunStatus.SUCCEEDED and model_path is not None:
        session.add(
            TrainedModel(
                id=job.output_model,
                project_id=job.project_id,
                training_job_id=job.id,
                base_model=job.base_model,
                method=job.method,
                path=model_path,
            )
        )
        routes = release_after_evaluation(session, job)
    else:
        routes = []
        cancel_after_evaluation(session, job)
    if released is not None:
        released[:] = routes  # replaced, not extended: the transaction may be retried
    return True


def stale_running_jobs(session: Session, *, timeout_s: int, now: datetime) -> list[str]:
    return list(
        session.scalars(
            select(TrainingJob.id).where(
                TrainingJob.status == RunStatus.RUNNING,
                TrainingJob.heartbeat_at < now - timedelta(seconds=timeout_s),
            )
        )
    )


def expired_outputs(session: Session, *, grace_s: float, now: datetime) -> list[tuple[str, str]]:
    """(job id, output folder) of jobs that failed or were cancelled more than grace_s ago and
    whose folder is still recorded."""
    rows = session.execute(
        select(TrainingJob.id, TrainingJob.output_dir).where(
            TrainingJob.status.in_([RunStatus.FAILED, RunStatus.CANCELLED]),
            TrainingJob.output_dir.is_not(None),
            TrainingJob.finished_at < now - timedelta(seconds=grace_s),
        )
    )
    return [(job_id, output_dir) for job_id, output_dir in rows if output_dir]


def forget_output(context: ProcessContext, job_id: str, *, message: str) -> None:
    """The job's output folder is gone: so are its checkpoints; an event says why."""

    def forget(session: Session) -> None:
        session.execute(update(TrainingJob).where(TrainingJob.id == job_id).values(output_dir=None))
        session.execute(delete(TrainingCheckpoint).where(TrainingCheckpoint.job_id == job_id))
        session.add(TrainingEvent(job_id=job_id, kind="status", message=message))

    context.transaction(forget)


def queued_job_ids(session: Session) -> list[str]:
    return list(
        session.scalars(
            select(TrainingJob.id)
            .where(TrainingJob.status == RunStatus.QUEUED)
            .order_by(TrainingJob.created_at)
        )
    )


def fail_running_training_jobs(context: ProcessContext) -> int:
    """Mark every running job failed: for a restart where no trainer can still be alive."""
    running = context.transaction(
        lambda session: list(
            session.scalars(select(TrainingJob.id).where(TrainingJob.status == RunStatus.RUNNING))
        )
    )
    for job_id in running:
        finish_job(context, job_id, RunStatus.FAILED, error="findap restarted mid-job")
    return len(running)
