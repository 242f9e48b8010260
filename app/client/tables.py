"""The --format and --columns options of commands that upload a table (submit, eval), and the
form fields and content type they become."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

TableFormat = Literal["jsonl", "csv", "parquet"]

FormatOption = Annotated[
    TableFormat | None,
    typer.Option(
        "--format",
        help="The file's format. Default: from its name (.jsonl, .csv, .parquet), else JSONL.",
        show_default=False,
    ),
]
ColumnsOption = Annotated[
    str | None,
    typer.Option(
        "--columns",
        help='JSON: which column holds each field, e.g. \'{"question": "problem", '
        '"reference_answer": "solution", "id": "uid"}\' (also "metadata.<key>").',
        show_default=False,
    ),
]

MEDIA_TYPES = {
    "jsonl": "application/jsonl",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
}


def table_fields(format_: str | None, columns: str | None) -> dict[str, str]:
    """The form fields that tell the server how to read the file (sent before it)."""
    fields = {"format": format_, "columns": columns}
    return {name: value for name, value in fields.items() if value is not None}


def media_type(path: Path, format_: str | None) -> str:
    """The file part's content type: the format's, or the one its suffix names."""
    suffix = path.suffix.lower().lstrip(".")
    return MEDIA_TYPES.get(format_ or {"pq": "parquet"}.get(suffix, suffix), "application/jsonl")
