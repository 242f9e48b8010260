"""The dashboard's Cancel buttons: a batch, an evaluation, a training job of the signed-in
project, through the same services as the API's POST …/cancel routes; back to the page, which
shows the new status."""

from __future__ import annotations

import logging
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from redis import Redis
from redis.exceptions import RedisError

from app.api.deps import RedisDep, SessionDep, SettingsDep
from app.dashboard.auth import COOKIE_PATH, DashboardProject, safe_next
from app.dashboard.routes import project_name, render
from app.dashboard.security import GUARDS
from app.kernel.errors import ConflictError, NotFoundError
from app.kernel.models import Batch
from app.kernel.models.statuses import BatchStatus, RunStatus
from app.kernel.queue import ChunkRoute, delete_queued_jobs
from app.services import batches as batch_service
from app.services import evaluations as evaluation_service
from app.services import training_jobs as job_service

log = logging.getLogger(__name__)

router = APIRouter(prefix=COOKIE_PATH, include_in_schema=False, dependencies=GUARDS)

CANCELLABLE_BATCH_STATUSES = frozenset(
    {BatchStatus.VALIDATING, BatchStatus.QUEUED, BatchStatus.IN_PROGRESS, BatchStatus.WAITING}
)
"""A batch or evaluation shows its Cancel button in these (finalizing is all but done)."""
CANCELLABLE_JOB_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})


def back_to(path: str, status: str) -> RedirectResponse:
    """A 303 to the page, with a notice when the cancel took effect or is under way."""
    notice = status if status in (BatchStatus.CANCELLED, BatchStatus.CANCELLING) else None
    separator = "&" if "?" in path else "?"
    return RedirectResponse(
        f"{path}{separator}notice={quote(notice)}" if notice else path, status_code=303
    )


def refused(
    request: Request, session: SessionDep, project: str, error: ConflictError | NotFoundError
) -> HTMLResponse:
    """The page that says why nothing was cancelled: 404 not the project's, 409 already over."""
    return render(
        request,
        "not_found.html",
        status_code=404 if isinstance(error, NotFoundError) else 409,
        heading="Not found" if isinstance(error, NotFoundError) else "Not cancelled",
        detail=error.detail,
        project=project_name(session, project),
    )


def withdraw_chunks(redis: Redis, prefix: str, chunks: list[ChunkRoute], what: str) -> None:
    try:
        delete_queued_jobs(redis, prefix, chunks)
    except RedisError as error:
        # Cancelled all the same: a worker skips these jobs, and each expires unclaimed.
        log.warning("%s: queued jobs not deleted (%s)", what, error)


@router.post("/batches/{batch_id}/cancel", response_model=None)
def cancel_batch(
    request: Request,
    batch_id: str,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    project: DashboardProject,
) -> Response:
    """Queued chunks never start; running ones finish and keep their results."""
    try:
        batch, chunks = batch_service.cancel_batch(session, batch_id, project_id=project)
    except (ConflictError, NotFoundError) as error:
        return refused(request, session, project, error)
    session.commit()
    withdraw_chunks(redis, settings.queue_name, chunks, f"batch {batch_id}")
    return back_to(f"{COOKIE_PATH}/batches/{batch_id}", batch.status)


@router.post("/evaluations/{evaluation_id}/cancel", response_model=None)
def cancel_evaluation(
    request: Request,
    evaluation_id: str,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    project: DashboardProject,
    next: Annotated[str, Form()] = f"{COOKIE_PATH}/evaluations",
) -> Response:
    """As a batch's; back to the page the button was on (the evaluations or a training job)."""
    try:
        evaluation, chunks = evaluation_service.cancel_evaluation(
            session, evaluation_id, project_id=project
        )
    except (ConflictError, NotFoundError) as error:
        return refused(request, session, project, error)
    batch = session.get(Batch, evaluation.batch_id)  # locked and changed by the cancel
    status = batch.status if batch is not None else BatchStatus.CANCELLED
    session.commit()
    withdraw_chunks(redis, settings.queue_name, chunks, f"evaluation {evaluation_id}")
    return back_to(safe_next(next), status)


@router.post("/training-jobs/{job_id}/cancel", response_model=None)
def cancel_training_job(
    request: Request, job_id: str, session: SessionDep, redis: RedisDep, project: DashboardProject
) -> Response:
    """A queued job is cancelled now; a running one stops at its next step."""
    try:
        job = job_service.cancel_training_job(session, job_id, project_id=project)
    except (ConflictError, NotFoundError) as error:
        return refused(request, session, project, error)
    session.commit()
    if job.status == RunStatus.CANCELLED:
        job_service.withdraw_training_job(redis, job.id)
    return back_to(f"{COOKIE_PATH}/training-jobs/{job_id}", job.status)
