"""/v1/evaluations: a model on held-out questions; accuracy per task with intervals."""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status
from redis import Redis
from redis.exceptions import RedisError

from app.api.deps import (
    IdempotencyKeyHeader,
    ProjectDep,
    ReadSessionDep,
    RedisDep,
    SessionDep,
    SessionFactoryDep,
    SettingsDep,
)
from app.api.downloads import JSONL_MEDIA_TYPE, PARQUET_MEDIA_TYPE, download_response
from app.api.enqueue import commit_and_enqueue
from app.api.errors import BODY_ERRORS, V1_ERRORS, error_responses
from app.api.idempotency import IdempotentPost
from app.kernel.config import Settings
from app.kernel.queue import delete_queued_jobs
from app.schemas.evaluation import (
    EvaluationCreate,
    EvaluationList,
    EvaluationOut,
    EvaluationResultList,
)
from app.services import batches as batch_service
from app.services import eval_results
from app.services import evaluations as evaluation_service
from app.services.downloads import take_download_slot

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/evaluations", tags=["evaluations"], responses=V1_ERRORS)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=EvaluationOut,
    responses={**BODY_ERRORS, **error_responses(404, 409, 429)},
)
def create_evaluation(
    request: EvaluationCreate,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    project: ProjectDep,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> EvaluationOut:
    """Evaluate `model` on questions (inline `prompts`, an eval `file_id`, or a `dataset_id`):
    they run as chunks on the workers that serve the model, like a batch's.

    With an `Idempotency-Key`, a retry returns the evaluation the first request made."""
    post = IdempotentPost(session, project, "evaluations", idempotency_key)
    earlier = post.replayed_id(request, response)
    if earlier is not None:
        found = evaluation_service.get_evaluation(session, earlier, project_id=project)
        return evaluation_service.evaluation_out(session, found, live_worker(redis, settings))
    evaluation, routes = evaluation_service.create_evaluation(
        session, request, project_id=project, settings=settings
    )
    post.record_created(evaluation.id)
    commit_and_enqueue(session, redis, settings, routes)
    return evaluation_service.evaluation_out(session, evaluation, live_worker(redis, settings))


@router.get("", response_model=EvaluationList)
def list_evaluations(
    session: ReadSessionDep,
    project: ProjectDep,
    model: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: str | None = None,
) -> EvaluationList:
    """Evaluations, newest first; `model` lists one model's runs. Pass the last id of a page as
    `after` for the next one."""
    rows, has_more = evaluation_service.list_evaluations(
        session, project_id=project, model=model, limit=limit, after=after
    )
    return EvaluationList.of(
        [evaluation_service.evaluation_out(session, row) for row in rows], has_more
    )


@router.get("/{evaluation_id}", response_model=EvaluationOut)
def get_evaluation(
    evaluation_id: str,
    session: ReadSessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    project: ProjectDep,
) -> EvaluationOut:
    """Status (as a batch's), accuracy overall and `by_task` with 95 % Wilson intervals,
    truncated and unparseable counts, tokens."""
    evaluation = evaluation_service.get_evaluation(session, evaluation_id, project_id=project)
    return evaluation_service.evaluation_out(session, evaluation, live_worker(redis, settings))


def live_worker(redis: Redis, settings: Settings) -> batch_service.LiveWorkerCheck | None:
    """Whether a live worker serves a model: for the note that none does."""
    return batch_service.live_worker_check(redis, settings.queue_name)


@router.post(
    "/{evaluation_id}/cancel", response_model=EvaluationOut, responses=error_responses(409)
)
def cancel_evaluation(
    evaluation_id: str,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    project: ProjectDep,
) -> EvaluationOut:
    """Queued chunks never start; running chunks finish and their results are kept."""
    evaluation, cancelled = evaluation_service.cancel_evaluation(
        session, evaluation_id, project_id=project
    )
    session.commit()
    try:
        delete_queued_jobs(redis, settings.queue_name, cancelled)
    except RedisError as error:
        log.warning("evaluation %s: queued jobs not deleted (%s)", evaluation_id, error)
    return evaluation_service.evaluation_out(session, evaluation)


@router.get(
    "/{evaluation_id}/results",
    response_model=EvaluationResultList,
    responses={
        **error_responses(429),
        200: {"content": {"application/jsonl": {}, "application/vnd.apache.parquet": {}}},
    },
)
def list_results(
    evaluation_id: str,
    session: SessionDep,
    session_factory: SessionFactoryDep,
    redis: RedisDep,
    settings: SettingsDep,
    project: ProjectDep,
    format: Literal["json", "jsonl", "parquet"] = "json",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: Annotated[str | None, Query(description="The last id of the previous page.")] = None,
) -> EvaluationResultList | Response:
    """One row per question: `id`, `answer`, `verdict`, `finish_reason` (samples > 1: the first
    answer, and every answer under `samples`). `json`: a page (`limit`, `after`); `jsonl` and
    `parquet`: every question, streamed."""
    evaluation = evaluation_service.get_evaluation(session, evaluation_id, project_id=project)
    batch_id, samples = evaluation.batch_id, evaluation.samples
    if format == "json":
        after_index = eval_results.position_after(session, batch_id, after)
        page, has_more, _ = eval_results.result_page(
            session, batch_id, after_index=after_index, limit=limit, samples=samples
        )
        return EvaluationResultList.of(page, has_more)
    session.close()  # each page of the download is read in a short session of its own
    slot = take_download_slot(
        redis,
        queue_prefix=settings.queue_name,
        project_id=project,
        limit=settings.downloads_per_project,
    )
    if format == "parquet":
        pages = eval_results.parquet_result_pages(session_factory, batch_id, samples)
        media_type, suffix = PARQUET_MEDIA_TYPE, "parquet"
    else:
        pages = eval_results.jsonl_result_pages(session_factory, batch_id, samples)
        media_type, suffix = JSONL_MEDIA_TYPE, "jsonl"
    return download_response(
        pages, slot, media_type=media_type, filename=f"{evaluation_id}-results.{suffix}"
    )
