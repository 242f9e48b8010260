"""/v1/datasets: freeze pairs into named, versioned datasets and download them."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from fastapi.responses import StreamingResponse

from app.api.deps import ProjectDep, SessionDep, SessionFactoryDep
from app.api.errors import BODY_ERRORS, V1_ERRORS, error_responses
from app.kernel.pairs_export import jsonl_chunks, openai_dpo_rows, pair_rows, parquet_chunks
from app.schemas.dataset import DatasetCreate, DatasetList, DatasetOut
from app.services import datasets as dataset_service

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], responses=V1_ERRORS)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetOut,
    responses={**BODY_ERRORS, **error_responses(409)},
)
def create_dataset(request: DatasetCreate, session: SessionDep, project: ProjectDep) -> DatasetOut:
    """Freeze the pairs of some batches (kinds, filters) as the next version of `name`; a
    batch that has not ended is a 409."""
    dataset = dataset_service.create_dataset(session, request, project_id=project)
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
    responses={200: {"content": {"application/jsonl": {}, "application/vnd.apache.parquet": {}}}},
)
def download_dataset(
    dataset_id: str,
    session: SessionDep,
    session_factory: SessionFactoryDep,
    project: ProjectDep,
    format: Literal["trl", "openai", "parquet"] = "trl",
) -> StreamingResponse:
    """Streamed: `trl` (conversational JSONL), `openai` (OpenAI DPO JSONL), `parquet`."""
    dataset = dataset_service.get_dataset(session, dataset_id, project_id=project)
    filename = f"{dataset.name}-v{dataset.version}"
    session.close()  # the download streams through its own session
    rows = pair_rows(session_factory, dataset_id=dataset_id)
    if format == "parquet":
        return StreamingResponse(
            parquet_chunks(rows),
            media_type="application/vnd.apache.parquet",
            headers={"Content-Disposition": f'attachment; filename="{filename}.parquet"'},
        )
    body = jsonl_chunks(openai_dpo_rows(rows) if format == "openai" else rows)
    return StreamingResponse(
        body,
        media_type="application/jsonl",
        headers={"Content-Disposition": f'attachment; filename="{filename}-{format}.jsonl"'},
    )
