"""Where uploaded files live on disk (the API writes them, the trainer reads them)."""

from __future__ import annotations

from pathlib import Path

from app.kernel.errors import ConflictError


def uploaded_file_path(files_dir: Path, file_id: str) -> Path:
    return files_dir / f"{file_id}.jsonl"


def stored_file_path(files_dir: Path, file_id: str, *, field: str = "file_id") -> Path:
    """The path of a file's stored bytes, or a ConflictError (409) naming `field` when they are
    gone (a files folder cleared or lost under a database that still lists the file): the
    tenant is told to upload it again, never shown a path."""
    path = uploaded_file_path(files_dir, file_id)
    if not path.is_file():
        raise ConflictError(
            f"{field}: the contents of file {file_id} are no longer stored on the server; "
            "upload the file again and use the new id"
        )
    return path
