"""Storing uploaded training files: checked line by line while streamed to disk; all or nothing."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.kernel.errors import InvalidInputError, NotFoundError, QuotaExceededError
from app.kernel.files import uploaded_file_path
from app.kernel.models import TrainingFile
from app.schemas.training_file import LINE_MODELS, LineModel
from app.services.decontamination import eval_file_overlap
from app.services.pagination import newest_first_page
from app.services.table_rows import Rows, TableFormat, row_reader
from app.services.uploads import parse_line, validate_row


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
    table: TableFormat = "jsonl",
    columns: Mapping[str, str] | None = None,
) -> TrainingFile:
    """Validate every line for its purpose while copying to disk; a bad line keeps nothing, nor
    does a file that would take the project's files past `quota_bytes` (QuotaExceededError).
    A CSV or Parquet file, or one read with a column mapping, is stored as the JSONL of its
    rows. An eval file gets its overlap with the project's datasets."""
    if purpose not in LINE_MODELS:
        raise InvalidInputError(
            f"purpose: must be one of {', '.join(LINE_MODELS)}, got {purpose!r}"
        )
    room = quota_bytes - stored_bytes(session, project_id)
    files_dir.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=files_dir, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            copy = CheckedCopy(
                out, LINE_MODELS[purpose], max_bytes=max_bytes, quota_bytes=quota_bytes, room=room
            )
            if table == "jsonl" and not columns:
                copy.jsonl_as_sent(upload)
            else:
                copy.rows_as_jsonl(upload, table, columns or {})
        size, lines, digest = copy.size, copy.lines, copy.digest
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


class CheckedCopy:
    """The JSONL lines of an upload written to `out` once each is checked for its purpose."""

    PIECE_BYTES = 256 * 1024

    def __init__(
        self,
        out: BinaryIO,
        model: type[LineModel],
        *,
        max_bytes: int,
        quota_bytes: int,
        room: int,
    ) -> None:
        self.out = out
        self.model = model
        self.max_bytes = max_bytes
        self.quota_bytes = quota_bytes
        self.room = room
        self.digest = hashlib.sha256()
        self.size = 0
        self.lines = 0

    def count(self, raw: bytes) -> None:
        self.size += len(raw)
        if self.size > self.max_bytes:
            raise InvalidInputError(f"file: larger than the limit of {self.max_bytes} bytes")
        if self.size > self.room:
            raise over_quota(self.quota_bytes, self.room)

    def write(self, raw: bytes) -> None:
        self.out.write(raw if raw.endswith(b"\n") else raw + b"\n")
        self.digest.update(raw)
        self.lines += 1

    def jsonl_as_sent(self, upload: BinaryIO) -> None:
        """A JSONL upload, its lines kept byte for byte."""
        for line_number, raw in enumerate(upload, start=1):
            self.count(raw)
            if not raw.strip():
                continue
            parse_line(raw, line_number, self.model)
            self.write(raw)

    def rows_as_jsonl(
        self, upload: BinaryIO, table: TableFormat, columns: Mapping[str, str]
    ) -> None:
        """The rows of a table (or of a JSONL file read with a column mapping), each stored
        as the JSON line of the fields it maps to."""
        rows = Rows(columns, list(self.model.model_fields), self.add_row)
        reader = row_reader(table, rows)
        while piece := upload.read(self.PIECE_BYTES):
            reader.feed(piece)
        reader.finish()

    def add_row(self, data: dict[str, Any], place: str) -> None:
        validate_row(data, place, self.model)
        raw = (json.dumps(data, ensure_ascii=False) + "\n").encode()
        self.count(raw)
        self.write(raw)


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
