"""Storing uploaded training files: checked line by line while streamed to disk; all or nothing."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.kernel.errors import InvalidInputError, NotFoundError, QuotaExceededError
from app.kernel.files import uploaded_file_path
from app.kernel.models import TrainingFile
from app.schemas.training_file import LINE_MODELS
from app.services.decontamination import eval_file_overlap
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
    quota_bytes: int,
) -> TrainingFile:
    """Validate every line for its purpose while copying to disk; a bad line keeps nothing, nor
    does a file that would take the project's files past `quota_bytes` (QuotaExceededError).
    An eval file gets its overlap with the project's datasets."""
    if purpose not in LINE_MODELS:
        raise InvalidInputError(
            f"purpose: must be one of {', '.join(LINE_MODELS)}, got {purpose!r}"
        )
    room = quota_bytes - stored_bytes(session, project_id)
    files_dir.mkdir(parents=True, exist_ok=True)
    digest, size, lines = hashlib.sha256(), 0, 0
    handle, temp_name = tempfile.mkstemp(dir=files_dir, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            for line_number, raw in enumerate(upload, start=1):
                size += len(raw)
                if size > max_bytes:
                    raise InvalidInputError(f"file: larger than the limit of {max_bytes} bytes")
                if size > room:
                    raise over_quota(quota_bytes, room)
                if not raw.strip():
                    continue
                parse_line(raw, line_number, LINE_MODELS[purpose])
                out.write(raw if raw.endswith(b"\n") else raw + b"\n")
                digest.update(raw)
                lines += 1
        if not lines:
            raise InvalidInputError("file: no lines in the upload")
        # Read from the finished copy on disk, before the quota lock: a long check of a large
        # project holds up no other upload.
        overlap = (
            eval_file_overlap(session, Path(temp_name), project_id=project_id)
            if purpose == "eval"
            else None
        )
        lock_stored_bytes(session, project_id)  # two uploads cannot both take the last room
        room = quota_bytes - stored_bytes(session, project_id)
        if size > room:
            raise over_quota(quota_bytes, room)
        row = TrainingFile(
            project_id=project_id,
            purpose=purpose,
            filename=filename,
            bytes=size,
            lines=lines,
            sha256=digest.hexdigest(),
            overlap=overlap,
        )
        session.add(row)
        session.flush()
        os.replace(temp_name, uploaded_file_path(files_dir, row.id))
        return row
    finally:
        if os.path.exists(temp_name):
            os.unlink(temp_name)


def stored_bytes(session: Session, project_id: str) -> int:
    """Bytes of the project's uploaded files."""
    stored = session.scalar(
        select(func.sum(TrainingFile.bytes)).where(TrainingFile.project_id == project_id)
    )
    return int(stored or 0)


def lock_stored_bytes(session: Session, project_id: str) -> None:
    """Hold the project's file quota until this transaction ends."""
    session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"file-bytes/{project_id}"))))


def over_quota(quota_bytes: int, room: int) -> QuotaExceededError:
    return QuotaExceededError(
        f"file: this project's files may take {quota_bytes} bytes and {max(room, 0)} are left; "
        "delete files it no longer needs (DELETE /v1/files/{id}) to make room"
    )


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
