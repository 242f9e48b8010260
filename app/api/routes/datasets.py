"""/v1/datasets: freeze pairs into named, versioned datasets and download them."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from fastapi.responses import StreamingResponse

from app.api.deps import ProjectDep, RedisDep, SessionDep, SessionFactoryDep, SettingsDep
from app.api.downloads import JSONL_MEDIA_TYPE, PARQUET_MEDIA_TYPE, download_response
from app.api.errors import BODY_ERRORS, V1_ERRORS, error_responses
from app.kernel.pairs_export import LineFormat, PairSource, jsonl_pages, parquet_pages
from app.kernel.prm_export import prm_jsonl, prm_rows
from app.schemas.dataset import DatasetCreate, DatasetList, DatasetOut
from app.services import datasets as dataset_service
from app.services.downloads import take_download_slot

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], responses=V1_ERRORS)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetOut,
    responses={**BODY_ERRORS, **error_responses(409)},
)
def create_dataset(
    request: DatasetCreate, session: SessionDep, settings: SettingsDep, project: ProjectDep
) -> DatasetOut:
    """Freeze the pairs of some batches (kinds, filters) as the next version of `name`; a
    batch that has not ended is a 409. `decontaminate_against` checks the pairs against eval
    files (`contamination` says what matched); `decontaminate: true` drops those pairs."""
    dataset = dataset_service.create_dataset(
        session, request, project_id=project, files_dir=settings.files_dir
    )
    session.commit()
    return dataset_service.dataset_out(dataset)


@router.get("", response_model=DatasetList)
def list_datasets(
    session: SessionDep,
    project: ProjectDep,
    name: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: str | None = None,
) -> DatasetList:
    """Datasets, newest first; `name` lists the versions of one. Pass the last id of a page as
    `after` for the next one."""
    rows, has_more = dataset_service.list_datasets(
        session, project_id=project, name=name, limit=limit, after=after
    )
    return DatasetList.of([dataset_service.dataset_out(row) for row in rows], has_more)


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: str, session: SessionDep, project: ProjectDep) -> DatasetOut:
    dataset = dataset_service.get_dataset(session, dataset_id, project_id=project)
    return dataset_service.dataset_out(dataset)


@router.get(
    "/{dataset_id}/download",
    response_class=StreamingResponse,
    responses={
        **error_responses(429),
        200: {"content": {JSONL_MEDIA_TYPE: {}, PARQUET_MEDIA_TYPE: {}}},
    },
)
def download_dataset(
    dataset_id: str,
    session: SessionDep,
    session_factory: SessionFactoryDep,
    redis: RedisDep,
    settings: SettingsDep,
    project: ProjectDep,
    format: Literal["trl", "openai", "parquet", "prm"] = "trl",
) -> StreamingResponse:
    """Streamed: `trl` (conversational JSONL), `openai` (OpenAI DPO JSONL), `parquet`, `prm`
    (the step labels of the answers behind the pairs, TRL's stepwise-supervision JSONL). A
    project streams at most DOWNLOADS_PER_PROJECT downloads at once (429 past it)."""
    dataset = dataset_service.get_dataset(session, dataset_id, project_id=project)
    name = f"{dataset.name}-v{dataset.version}"
    session.close()  # each page of the download is read in a short session of its own
    slot = take_download_slot(
        redis,
        queue_prefix=settings.queue_name,
        project_id=project,
        limit=settings.downloads_per_project,
    )
    source = PairSource(dataset_id=dataset_id)
    if format == "prm":
        return download_response(
            prm_jsonl(prm_rows(session_factory, dataset_id=dataset_id)),
            slot,
            media_type=JSONL_MEDIA_TYPE,
            filename=f"{name}-prm.jsonl",
        )
    if format == "parquet":
        return download_response(
            parquet_pages(session_factory, source),
            slot,
            media_type=PARQUET_MEDIA_TYPE,
            filename=f"{name}.parquet",
        )
    return download_response(
        jsonl_pages(session_factory, source, LineFormat(format)),
        slot,
        media_type=JSONL_MEDIA_TYPE,
        filename=f"{name}-{format}.jsonl",
    )
