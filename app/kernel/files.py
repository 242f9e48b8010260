"""Where uploaded files live on disk (the API writes them, the trainer reads them)."""

from __future__ import annotations

from pathlib import Path


def uploaded_file_path(files_dir: Path, file_id: str) -> Path:
    return files_dir / f"{file_id}.jsonl"
