"""/v1/files: upload, list, download and delete JSONL training files."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile, status
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import ProjectDep, SessionDep, SettingsDep
from app.api.errors import BODY_ERRORS, V1_ERRORS, error_responses
from app.kernel.files import stored_file_path
from app.schemas.training_file import (
    LINE_MODELS,
    FilePurpose,
    TrainingFileDeleted,
    TrainingFileList,
    TrainingFileOut,
)
from app.services import training_files as file_service
from app.services.table_rows import TableFormat, column_mapping, table_format

router = APIRouter(prefix="/v1/files", tags=["files"], responses=V1_ERRORS)

PURPOSE_HELP = (
    "cpt ({text}), sft ({messages} or {prompt, completion}), "
    "preference ({prompt, chosen, rejected})"
)


def file_out(row: object) -> TrainingFileOut:
    return TrainingFileOut.model_validate(row, from_attributes=True)


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=TrainingFileOut, responses=BODY_ERRORS
)
async def upload_file(
    file: Annotated[
        UploadFile, File(description="JSONL (one example a line), CSV with a header, or Parquet.")
    ],
    purpose: Annotated[str, Form(description=PURPOSE_HELP)],
    session: SessionDep,
    settings: SettingsDep,
    project: ProjectDep,
    format: Annotated[
        TableFormat | None,
        Form(description="jsonl, csv or parquet; default: from the file name or content type."),
    ] = None,
    columns: Annotated[
        str | None,
        Form(
            description='JSON: which column holds each field, e.g. {"question": "problem", '
            '"reference_answer": "solution", "id": "uid"} (also "metadata.<key>").'
        ),
    ] = None,
) -> TrainingFileOut:
    """Store a training file after checking every line; a bad line is named and nothing is kept.
    A CSV or Parquet file (or JSONL with a column mapping) is stored as the JSONL of its rows."""

    def store() -> TrainingFileOut:
        model = LINE_MODELS.get(purpose)
        row = file_service.store_training_file(
            session,
            file.file,
            project_id=project,
            filename=file.filename or "upload.jsonl",
            purpose=purpose,
            files_dir=settings.files_dir,
            max_bytes=settings.max_upload_bytes,
            quota_bytes=settings.max_file_bytes_per_project,
            table=table_format(format, filename=file.filename, content_type=file.content_type),
            columns=column_mapping(columns, list(model.model_fields)) if model else None,
        )
        session.commit()
        return file_out(row)

    return await run_in_threadpool(store)


@router.get("", response_model=TrainingFileList)
def list_files(
    session: SessionDep,
    project: ProjectDep,
    purpose: FilePurpose | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: str | None = None,
) -> TrainingFileList:
    """Files, newest first; pass the last id of a page as `after` for the next one."""
    rows, has_more = file_service.list_training_files(
        session, project_id=project, purpose=purpose, limit=limit, after=after
    )
    return TrainingFileList.of([file_out(row) for row in rows], has_more)


@router.get("/{file_id}", response_model=TrainingFileOut)
def get_file(file_id: str, session: SessionDep, project: ProjectDep) -> TrainingFileOut:
    return file_out(file_service.get_training_file(session, file_id, project_id=project))


@router.get(
    "/{file_id}/content",
    response_class=FileResponse,
    responses={200: {"content": {"application/jsonl": {}}}, **error_responses(409)},
)
def download_file(
    file_id: str, session: SessionDep, settings: SettingsDep, project: ProjectDep
) -> FileResponse:
    """The stored JSONL, streamed from disk."""
    row = file_service.get_training_file(session, file_id, project_id=project)
    return FileResponse(
        stored_file_path(settings.files_dir, row.id),
        media_type="application/jsonl",
        filename=row.filename,
    )


@router.delete("/{file_id}", response_model=TrainingFileDeleted)
def delete_file(
    file_id: str, session: SessionDep, settings: SettingsDep, project: ProjectDep
) -> TrainingFileDeleted:
    file_service.delete_training_file(
        session, file_id, project_id=project, files_dir=settings.files_dir
    )
    session.commit()
    return TrainingFileDeleted(id=file_id, deleted=True)
