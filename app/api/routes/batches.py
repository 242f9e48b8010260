"""/v1/batches: submit prompts, follow progress, read samples, download pairs, cancel."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

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
from app.api.errors import V1_ERRORS, error_responses
from app.api.idempotency import IdempotentPost
from app.api.upload_stream import StreamedForm
from app.kernel.config import Settings
from app.kernel.errors import InvalidInputError
from app.kernel.models import Batch
from app.kernel.pairs_export import Page, PairSource, jsonl_pages, parquet_pages
from app.kernel.prm_export import prm_jsonl, prm_rows
from app.kernel.queue import delete_queued_jobs
from app.schemas.batch import BatchCreate, BatchList, BatchOptions, BatchOut, PromptIn
from app.schemas.sample import SampleList
from app.services import batches as batch_service
from app.services import samples as sample_service
from app.services.downloads import take_download_slot
from app.services.sample_export import sample_pages, samples_jsonl, samples_parquet
from app.services.table_rows import column_mapping, table_format
from app.services.uploads import PromptLines, describe_validation_error

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/batches", tags=["batches"], responses=V1_ERRORS)

UPLOAD_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/BatchCreate"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The prompts: JSONL (one object a line), CSV with a "
                            "header row, or Parquet.",
                        },
                        "format": {
                            "type": "string",
                            "enum": ["jsonl", "csv", "parquet"],
                            "description": "The file's format; default: from its name "
                            "(.jsonl, .csv, .parquet) or content type, else JSONL. Send it "
                            "before the file.",
                        },
                        "columns": {
                            "type": "string",
                            "description": "JSON: which column holds each field, e.g. "
                            '{"question": "problem", "reference_answer": "solution", '
                            '"id": "uid"} (also "metadata.<key>"). Send it before the file.',
                        },
                        "options": {
                            "type": "string",
                            "description": "JSON of BatchOptions: policy, judge, pairing, "
                            "metadata, chunk_size.",
                        },
                    },
                }
            },
        },
    }
}


async def read_batch_request(request: Request, settings: Settings) -> BatchCreate:
    """A JSON body, or a multipart JSONL upload with an optional `options` JSON field; parsed in
    the thread pool, so a large body never holds up the event loop."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return await read_prompt_upload(request, settings)
    if not content_type.startswith("application/json"):
        raise InvalidInputError(
            "content-type: send application/json or multipart/form-data with a JSONL file, "
            f"got {content_type or 'none'!r}"
        )
    return await run_in_threadpool(parse_batch_json, await request.body())


def parse_batch_json(body: bytes) -> BatchCreate:
    try:
        return BatchCreate.model_validate_json(body)
    except ValidationError as error:
        raise InvalidInputError(describe_validation_error(error, model=BatchCreate)) from None


async def read_prompt_upload(request: Request, settings: Settings) -> BatchCreate:
    """The file's rows are parsed as they arrive: a bad row, or one prompt more than
    MAX_PROMPTS_PER_BATCH, is refused before the rest of the upload is read. Its format and
    column mapping come from the `format` and `columns` fields sent before the file."""
    made: list[PromptLines] = []

    def prompt_rows() -> PromptLines:
        if not made:
            made.append(prompt_reader(form, settings))
        return made[0]

    form = StreamedForm(
        request.headers["content-type"],
        lambda data: prompt_rows().feed(data),
        max_field_bytes=settings.max_upload_bytes,
    )
    await form.read(request.stream())
    if not form.file_seen:
        raise InvalidInputError("file: a file of prompts (JSONL, CSV or Parquet) is required")
    for name in TABLE_FIELDS:
        if name in form.fields and name not in form.fields_before_file:
            raise InvalidInputError(f"{name}: send this form field before the file, not after it")
    return await run_in_threadpool(
        batch_of_upload, prompt_rows(), form.fields.get("options") or "{}"
    )


TABLE_FIELDS = ("format", "columns")
"""The form fields that say how to read the file: sent before it."""


def prompt_reader(form: StreamedForm, settings: Settings) -> PromptLines:
    """A reader of the upload's prompts in the format and with the column mapping its form
    fields name (those sent before the file)."""
    return PromptLines(
        max_prompts=settings.max_prompts_per_batch,
        table=table_format(
            form.fields_before_file.get("format"),
            filename=form.filename,
            content_type=form.file_content_type,
        ),
        columns=column_mapping(form.fields_before_file.get("columns"), list(PromptIn.model_fields)),
    )


def batch_of_upload(prompts: PromptLines, raw_options: str) -> BatchCreate:
    try:
        options = BatchOptions.model_validate_json(raw_options)
    except ValidationError as error:
        raise InvalidInputError(
            describe_validation_error(error, "options", model=BatchOptions)
        ) from None
    return BatchCreate(prompts=prompts.finish(), **options.model_dump(exclude_unset=True))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=BatchOut,
    responses=error_responses(400, 413, 429),
    openapi_extra=UPLOAD_BODY_DOC,
)
async def create_batch(
    request: Request,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    project: ProjectDep,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> BatchOut:
    """Submit prompts (JSON body or JSONL upload); they are stored, chunked and queued.

    With an `Idempotency-Key`, a retry returns the batch the first request made."""
    batch_request = await read_batch_request(request, settings)
    # Storing 100,000 prompts takes seconds of blocking I/O: keep it off the event loop.
    return await run_in_threadpool(
        store_batch, session, redis, settings, batch_request, project, idempotency_key, response
    )


def store_batch(
    session: Session,
    redis: Redis,
    settings: Settings,
    batch_request: BatchCreate,
    project: str,
    idempotency_key: str | None,
    response: Response,
) -> BatchOut:
    post = IdempotentPost(session, project, "batches", idempotency_key)
    earlier = post.replayed_id(batch_request, response)
    if earlier is not None:
        batch = batch_service.get_batch(session, earlier, project_id=project)
        return summarize(session, batch, redis, settings)
    batch, routes = batch_service.create_batch(
        session, batch_request, project_id=project, limits=settings
    )
    post.record_created(batch.id)
    commit_and_enqueue(session, redis, settings, routes)
    return summarize(session, batch, redis, settings)


def summarize(session: Session, batch: Batch, redis: Redis, settings: Settings) -> BatchOut:
    return batch_service.summarize_batch(
        session, batch, redis=redis, queue_prefix=settings.queue_name
    )


@router.get("", response_model=BatchList)
async def list_batches(
    session: ReadSessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    project: ProjectDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: str | None = None,
) -> BatchList:
    """Batches, newest first; pass the last id of a page as `after` for the next one."""
    # The queries run in the thread pool; FastAPI then checks the response on the event loop,
    # where for a plain `def` handler it would take a second trip through the pool.
    data, has_more = await run_in_threadpool(
        batch_service.list_summaries,
        session,
        project_id=project,
        limit=limit,
        after=after,
        redis=redis,
        queue_prefix=settings.queue_name,
    )
    return BatchList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=has_more,
    )


@router.get("/{batch_id}", response_model=BatchOut)
async def get_batch(
    batch_id: str,
    session: ReadSessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    project: ProjectDep,
) -> BatchOut:
    """Status, progress counters, verdict distribution, pairs and token usage."""
    # Polled often: one trip through the thread pool (see list_batches).
    return await run_in_threadpool(
        batch_service.get_summary,
        session,
        batch_id,
        project_id=project,
        redis=redis,
        queue_prefix=settings.queue_name,
    )


@router.post("/{batch_id}/cancel", response_model=BatchOut, responses=error_responses(409))
def cancel_batch(
    batch_id: str, session: SessionDep, redis: RedisDep, settings: SettingsDep, project: ProjectDep
) -> BatchOut:
    """Queued chunks never start (their jobs leave Redis); running chunks finish and their
    results are kept."""
    batch, cancelled = batch_service.cancel_batch(session, batch_id, project_id=project)
    session.commit()
    try:
        delete_queued_jobs(redis, settings.queue_name, cancelled)
    except RedisError as error:
        # Cancelled all the same: a worker skips these jobs, and each expires unclaimed.
        log.warning("batch %s: queued jobs not deleted (%s)", batch_id, error)
    return summarize(session, batch, redis, settings)


@router.get(
    "/{batch_id}/samples",
    response_model=SampleList,
    responses={
        **error_responses(429),
        200: {
            "content": {
                "application/json": {},
                "application/jsonl": {},
                "application/vnd.apache.parquet": {},
            }
        },
    },
)
def list_samples(
    batch_id: str,
    session: ReadSessionDep,
    session_factory: SessionFactoryDep,
    redis: RedisDep,
    settings: SettingsDep,
    project: ProjectDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,  # a bigint id
    verdict: Literal["correct", "wrong", "unparseable", "truncated"] | None = None,
    agreement: Annotated[
        Literal["agree", "disagree"] | None,
        Query(description="Only answers where judge and rollouts agree / disagree."),
    ] = None,
    format: Annotated[
        Literal["jsonl", "parquet"] | None,
        Query(
            description="Download every answer (all K of each prompt) as a file instead of a "
            "page: JSON Lines or Parquet, streamed; `limit` and `after` do not apply."
        ),
    ] = None,
) -> SampleList | Response:
    """Answers in order, each with its final-answer verdict and first-error analyses (the
    judge's, the rollouts' with each prefix's success estimate). With `format`, all of them as
    a streamed download (at most DOWNLOADS_PER_PROJECT at once per project, 429 past it)."""
    batch_service.get_batch(session, batch_id, project_id=project)
    if format is not None:
        session.close()  # each page of the download is read in a short session of its own
        slot = take_download_slot(
            redis,
            queue_prefix=settings.queue_name,
            project_id=project,
            limit=settings.downloads_per_project,
        )
        pages = sample_pages(
            session_factory,
            batch_id,
            verdict=verdict,
            agreement=agreement,
            arrow=format == "parquet",
        )
        if format == "parquet":
            body, media_type = samples_parquet(pages), PARQUET_MEDIA_TYPE
        else:
            body, media_type = samples_jsonl(pages), JSONL_MEDIA_TYPE
        return download_response(
            body, slot, media_type=media_type, filename=f"{batch_id}-samples.{format}"
        )
    data, has_more = sample_service.list_samples(
        session, batch_id, limit=limit, after=after, verdict=verdict, agreement=agreement
    )
    return SampleList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=has_more,
    )


BATCH_STATUS_HEADER = "X-Findap-Batch-Status"


@router.get(
    "/{batch_id}/pairs",
    response_class=StreamingResponse,
    responses={
        **error_responses(429),
        200: {
            "content": {"application/jsonl": {}, "application/vnd.apache.parquet": {}},
            "headers": {
                BATCH_STATUS_HEADER: {
                    "description": "The batch's status when the download began: before "
                    "`completed` (or `failed`, `cancelled`) the pairs are those made so far.",
                    "schema": {"type": "string"},
                }
            },
        },
    },
)
def download_pairs(
    batch_id: str,
    session: SessionDep,
    session_factory: SessionFactoryDep,
    redis: RedisDep,
    settings: SettingsDep,
    project: ProjectDep,
    format: Literal["jsonl", "parquet", "prm"] = "jsonl",
    kind: Annotated[
        Literal["fap", "scp"] | None,
        Query(description="Only pairs of this kind; default: both. Not with format=prm."),
    ] = None,
) -> StreamingResponse:
    """Preference pairs in TRL's conversational format, streamed from the database (`prm`:
    every judged answer's step labels in TRL's stepwise-supervision format instead); the
    `X-Findap-Batch-Status` header says whether the batch is still making them. A project
    streams at most DOWNLOADS_PER_PROJECT downloads at once (429 past it)."""
    if kind is not None and format == "prm":
        raise InvalidInputError(
            f"kind: applies to pairs, not to format=prm (step labels of answers), got {kind!r}"
        )
    batch_status = batch_service.get_batch(session, batch_id, project_id=project).status
    session.close()  # each page of the download is read in a short session of its own
    slot = take_download_slot(
        redis,
        queue_prefix=settings.queue_name,
        project_id=project,
        limit=settings.downloads_per_project,
    )
    source = PairSource(batch_id=batch_id, kind=kind)
    pages: Iterator[Page]
    if format == "prm":
        pages = prm_jsonl(prm_rows(session_factory, batch_id=batch_id))
        media_type, filename = JSONL_MEDIA_TYPE, f"{batch_id}-prm.jsonl"
    elif format == "parquet":
        pages = parquet_pages(session_factory, source)
        media_type, filename = PARQUET_MEDIA_TYPE, f"{batch_id}-pairs.parquet"
    else:
        pages = jsonl_pages(session_factory, source)
        media_type, filename = JSONL_MEDIA_TYPE, f"{batch_id}-pairs.jsonl"
    return download_response(
        pages,
        slot,
        media_type=media_type,
        filename=filename,
        headers={BATCH_STATUS_HEADER: batch_status},
    )
