"""Storing uploaded training files: checked line by line while streamed to disk; all or nothing."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.kernel.errors import InvalidInputError, NotFoundError
from app.kernel.files import uploaded_file_path
from app.kernel.models import TrainingFile
from app.schemas.training_file import LINE_MODELS
from app.services.pagination import newest_first_page
from app.services.uploads import parse_line


def store_training_file(
    session: Session,
    upload: BinaryIO,
    *,
    project_id: str,
    filename: str,
    purpose: str,
    files_dir: Path,
    max_bytes: int,
) -> TrainingFile:
    """Validate every line for its purpose while copying to disk; a bad line keeps nothing."""
    if purpose not in LINE_MODELS:
        raise InvalidInputError(
            f"purpose: must be one of {', '.join(LINE_MODELS)}, got {purpose!r}"
        )
    files_dir.mkdir(parents=True, exist_ok=True)
    digest, size, lines = hashlib.sha256(), 0, 0
    handle, temp_name = tempfile.mkstemp(dir=files_dir, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            for line_number, raw in enumerate(upload, start=1):
                size += len(raw)
                if size > max_bytes:
                    raise InvalidInputError(f"file: larger than the limit of {max_bytes} bytes")
                if not raw.strip():
                    continue
                parse_line(raw, line_number, LINE_MODELS[purpose])
                out.write(raw if raw.endswith(b"\n") else raw + b"\n")
                digest.update(raw)
                lines += 1
        if not lines:
            raise InvalidInputError("file: no lines in the upload")
        row = TrainingFile(
            project_id=project_id,
            purpose=purpose,
            filename=filename,
            bytes=size,
            lines=lines,
            sha256=digest.hexdigest(),
        )
        session.add(row)
        session.flush()
        os.replace(temp_name, uploaded_file_path(files_dir, row.id))
        return row
    finally:
        if os.path.exists(temp_name):
            os.unlink(temp_name)


def get_training_file(session: Session, file_id: str, *, project_id: str) -> TrainingFile:
    row = session.get(TrainingFile, file_id)
    if row is None or row.project_id != project_id:
        raise NotFoundError(f"file {file_id!r} not found")
    return row


def list_training_files(
    session: Session, *, project_id: str, purpose: str | None, limit: int, after: str | None
) -> tuple[list[TrainingFile], bool]:
    """A page of the project's files, newest first; `after`: the previous page's last id."""
    cursor = None if after is None else get_training_file(session, after, project_id=project_id)
    query = select(TrainingFile).where(TrainingFile.project_id == project_id)
    if purpose is not None:
        query = query.where(TrainingFile.purpose == purpose)
    return newest_first_page(session, TrainingFile, query, cursor=cursor, limit=limit)


def delete_training_file(
    session: Session, file_id: str, *, project_id: str, files_dir: Path
) -> None:
    session.delete(get_training_file(session, file_id, project_id=project_id))
    session.flush()
    uploaded_file_path(files_dir, file_id).unlink(missing_ok=True)
