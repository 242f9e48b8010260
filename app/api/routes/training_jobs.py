"""/v1/training-jobs: fine-tune a base model on files and datasets, follow it, cancel it."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from app.api.deps import IdempotencyKeyHeader, ProjectDep, RedisDep, SessionDep, SettingsDep
from app.api.enqueue import commit_and_enqueue
from app.api.errors import BODY_ERRORS, V1_ERRORS, error_responses
from app.api.idempotency import IdempotentPost
from app.kernel.models.statuses import RunStatus
from app.kernel.queue import enqueue_training_job
from app.schemas.training_job import (
    CheckpointList,
    TrainingEventList,
    TrainingJobCreate,
    TrainingJobList,
    TrainingJobOut,
)
from app.services import job_evaluations
from app.services import training_jobs as job_service

router = APIRouter(prefix="/v1/training-jobs", tags=["training jobs"], responses=V1_ERRORS)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TrainingJobOut,
    responses={**BODY_ERRORS, **error_responses(429)},
)
def create_training_job(
    request: TrainingJobCreate,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    project: ProjectDep,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> TrainingJobOut:
    """Check the base model and data, store the job and queue it for a train worker. With
    `evaluation`, the base model is evaluated now (or an earlier run reused) and the trained
    model once the job succeeds.

    With an `Idempotency-Key`, a retry returns the job the first request made."""
    post = IdempotentPost(session, project, "training-jobs", idempotency_key)
    earlier = post.replayed_id(request, response)
    if earlier is not None:
        job = job_service.get_training_job(session, earlier, project_id=project)
        return job_service.training_job_out(session, job)
    job = job_service.create_training_job(session, settings, request, project_id=project)
    routes = []
    if request.evaluation is not None:
        routes = job_evaluations.attach_evaluations(session, settings, job, request.evaluation)
    post.record_created(job.id)
    # Postgres holds the job now; if Redis fails here the train worker's reconcile re-enqueues it
    # (and the reaper sends the before-evaluation's chunks).
    commit_and_enqueue(session, redis, settings, routes)
    enqueue_training_job(redis, settings.queue_name, job.id)
    return job_service.training_job_out(session, job)


@router.get("", response_model=TrainingJobList)
def list_training_jobs(
    session: SessionDep,
    project: ProjectDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: str | None = None,
) -> TrainingJobList:
    """Training jobs, newest first; pass the last id of a page as `after` for the next one."""
    rows, has_more = job_service.list_training_jobs(
        session, project_id=project, limit=limit, after=after
    )
    return TrainingJobList.of(job_service.training_jobs_out(session, rows), has_more)


@router.get("/{job_id}", response_model=TrainingJobOut)
def get_training_job(job_id: str, session: SessionDep, project: ProjectDep) -> TrainingJobOut:
    """Status, settings, the last checkpoint, and the result once finished."""
    job = job_service.get_training_job(session, job_id, project_id=project)
    return job_service.training_job_out(session, job)


@router.post("/{job_id}/cancel", response_model=TrainingJobOut, responses=error_responses(409))
def cancel_training_job(
    job_id: str, session: SessionDep, redis: RedisDep, project: ProjectDep
) -> TrainingJobOut:
    """A queued job is cancelled now; a running one stops at its next step (status follows)."""
    job = job_service.cancel_training_job(session, job_id, project_id=project)
    session.commit()
    if job.status == RunStatus.CANCELLED:
        job_service.withdraw_training_job(redis, job.id)
    return job_service.training_job_out(session, job)


@router.get("/{job_id}/events", response_model=TrainingEventList)
def list_training_events(
    job_id: str,
    session: SessionDep,
    project: ProjectDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,  # a bigint id
    kind: Literal["metrics", "eval", "checkpoint", "status"] | None = None,
) -> TrainingEventList:
    """What the job reported, oldest first; pass the last id as `after` to read only new ones."""
    rows, has_more = job_service.list_training_events(
        session, job_id, project_id=project, after=after, limit=limit, kind=kind
    )
    data = [job_service.event_out(row) for row in rows]
    return TrainingEventList.of(data, has_more)


@router.get("/{job_id}/checkpoints", response_model=CheckpointList)
def list_checkpoints(job_id: str, session: SessionDep, project: ProjectDep) -> CheckpointList:
    """Saved checkpoints by step."""
    rows = job_service.list_checkpoints(session, job_id, project_id=project)
    return CheckpointList(data=[job_service.checkpoint_out(row) for row in rows])
