"""Rows of an uploaded table (JSONL, CSV or Parquet), read as the bytes arrive, with a column
mapping that names which column holds each field (`{"question": "problem", "id": "uid"}`).

A reader is fed the file in pieces of any size and hands each row, as the fields of the line
model it is for, to a sink with the row's place (`file line 3`, `file row 3`): JSONL and CSV are
parsed record by record as they stream in, so a bad row ends the upload at once. Parquet keeps
its index at the end of the file: its bytes go to a temporary file, read afterwards one row
group at a time (the mapped columns only), so memory stays that of one row group.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import decimal
import difflib
import json
import tempfile
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal, Protocol, get_args

from app.kernel.errors import InvalidInputError

TableFormat = Literal["jsonl", "csv", "parquet"]
TABLE_FORMATS: tuple[str, ...] = get_args(TableFormat)

# A cell may be as large as the upload (the upload's limit bounds it); the default is 128 kB.
csv.field_size_limit(2**31 - 1)

RowSink = Callable[[dict[str, Any], str], None]
"""Takes a row's fields and its place in the file (`file line 3`)."""

_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_CONTENT_TYPES = {
    "application/jsonl": "jsonl",
    "application/x-ndjson": "jsonl",
    "application/json": "jsonl",
    "text/csv": "csv",
    "application/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
}


def table_format(
    explicit: str | None, *, filename: str | None = None, content_type: str | None = None
) -> TableFormat:
    """The upload's format: the `format` field if sent, else the file name's suffix, else the
    part's content type, else JSONL."""
    if explicit:
        if explicit not in TABLE_FORMATS:
            raise InvalidInputError(
                f"format: must be one of {', '.join(TABLE_FORMATS)}, got {explicit!r}"
            )
        return explicit  # type: ignore[return-value]
    name = (filename or "").lower()
    for suffix, found in _SUFFIXES.items():
        if name.endswith(suffix):
            return found  # type: ignore[return-value]
    media = (content_type or "").split(";")[0].strip().lower()
    return _CONTENT_TYPES.get(media, "jsonl")  # type: ignore[return-value]


def column_mapping(raw: str | None, fields: Collection[str]) -> dict[str, str]:
    """The `columns` form field: a JSON object from a field (or `metadata.<key>` where the row
    has metadata) to the column that holds it; {} when not sent."""
    if raw is None or not raw.strip():
        return {}
    try:
        mapping = json.loads(raw)
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"columns: not valid JSON ({error.msg})") from None
    if not isinstance(mapping, dict):
        raise InvalidInputError('columns: must be a JSON object like {"question": "problem"}')
    for field, column in mapping.items():
        if not isinstance(column, str) or not column:
            raise InvalidInputError(f"columns.{field}: must be a column name, got {column!r}")
        if field in fields or (field.startswith("metadata.") and "metadata" in fields):
            continue
        close = difflib.get_close_matches(field, fields, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InvalidInputError(
            f"columns: unknown field {field!r}{hint}; fields: {', '.join(fields)}"
        )
    return mapping


class Rows:
    """Which values of a source row become which fields."""

    def __init__(self, mapping: Mapping[str, str], fields: Collection[str], sink: RowSink) -> None:
        self.mapping = mapping
        self.fields = fields
        self.sink = sink

    def check_header(self, columns: Collection[str]) -> None:
        """A table's columns hold every mapped one."""
        for field, column in self.mapping.items():
            if column not in columns:
                raise InvalidInputError(
                    f"columns.{field}: no column {column!r} in the file; "
                    f"its columns: {', '.join(columns)}"
                )

    def wanted_columns(self, columns: Collection[str]) -> list[str]:
        """The columns a table row is read from: the mapped ones and those named as a field."""
        mapped = set(self.mapping.values())
        return [c for c in columns if c in mapped or (c in self.fields and c not in self.mapping)]

    def table_row(self, values: Mapping[str, Any], place: str) -> None:
        """A CSV or Parquet row: its mapped columns and the columns named as a field; empty
        cells and nulls left out, other columns ignored."""
        row: dict[str, Any] = {}
        for column, value in values.items():
            if column in self.fields and column not in self.mapping and present(value):
                row[column] = value
        self.put_mapped(row, values, place, missing_is_error=False)
        if isinstance(row.get("id"), int):
            row["id"] = str(row["id"])  # an integer id column is still an id
        self.sink(row, place)

    def object_row(self, values: dict[str, Any], place: str) -> None:
        """A JSON object: its mapped keys renamed to their fields, the rest kept as sent."""
        row = {key: value for key, value in values.items() if key not in self.mapping.values()}
        self.put_mapped(row, values, place, missing_is_error=True)
        self.sink(row, place)

    def put_mapped(
        self, row: dict[str, Any], values: Mapping[str, Any], place: str, *, missing_is_error: bool
    ) -> None:
        for field, column in self.mapping.items():
            if column not in values:
                if missing_is_error:
                    raise InvalidInputError(
                        f"{place}: columns.{field}: no key {column!r} in this row"
                    )
                continue
            value = values[column]
            if not present(value):
                continue
            if field.startswith("metadata."):
                metadata = row.setdefault("metadata", {})
                if isinstance(metadata, dict):
                    metadata[field.removeprefix("metadata.")] = value
            else:
                row[field] = value


def present(value: Any) -> bool:
    """A value a cell holds: not an empty CSV cell, not a null."""
    return value is not None and value != ""


class RowReader(Protocol):
    def feed(self, data: bytes) -> None: ...

    def finish(self) -> None: ...


class JsonlReader:
    """JSON Lines, one object a line; blank lines skipped."""

    def __init__(self, rows: Rows, *, before_row: Callable[[str], None]) -> None:
        self.rows = rows
        self.before_row = before_row
        self.line_number = 0
        self._partial: list[bytes] = []

    def feed(self, data: bytes) -> None:
        *complete, rest = data.split(b"\n")
        for piece in complete:
            # The newline stays: a JSON error's column counts as it did for the whole file.
            self._partial += (piece, b"\n")
            line, self._partial = b"".join(self._partial), []
            self.add_line(line)
        if rest:
            self._partial.append(rest)

    def add_line(self, raw: bytes) -> None:
        self.line_number += 1
        if not raw.strip():
            return
        place = f"file line {self.line_number}"
        self.before_row(place)
        self.rows.object_row(json_object(raw, place), place)

    def finish(self) -> None:
        if self._partial:
            self.add_line(b"".join(self._partial))
            self._partial = []


def json_object(raw: bytes, place: str) -> dict[str, Any]:
    """One JSONL line as an object; a problem raises naming its place."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        # The decoder counts lines within this one line; only the file's number is said.
        raise InvalidInputError(
            f"{place}: not valid JSON ({error.msg} at column {error.pos + 1})"
        ) from None
    except UnicodeDecodeError as error:
        raise InvalidInputError(f"{place}: not valid JSON ({error})") from None
    except RecursionError:
        raise InvalidInputError(
            f"{place}: nested too deeply (arrays and objects within each other)"
        ) from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{place}: expected a JSON object")
    return data


class CsvReader:
    """CSV with a header row (UTF-8, a BOM allowed); a record ends at a line break outside
    quotes, so quoted cells may hold line breaks. Rows are numbered from 1 after the header."""

    def __init__(self, rows: Rows, *, before_row: Callable[[str], None]) -> None:
        self.rows = rows
        self.before_row = before_row
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.header: list[str] | None = None
        self.row_number = 0
        self._record: list[str] = []
        self._quotes = 0
        self._text = ""

    def feed(self, data: bytes) -> None:
        try:
            text = self._text + self.decoder.decode(data)
        except UnicodeDecodeError as error:
            raise InvalidInputError(f"file: CSV is not UTF-8 ({error.reason})") from None
        *lines, self._text = text.split("\n")
        for line in lines:
            self.add_piece(line + "\n")

    def add_piece(self, line: str) -> None:
        self._record.append(line)
        self._quotes += line.count('"')
        if self._quotes % 2:
            return  # a line break inside a quoted cell: the record goes on
        record, self._record, self._quotes = "".join(self._record), [], 0
        if record.strip():
            self.add_record(record)

    def add_record(self, record: str) -> None:
        try:
            cells = next(csv.reader([record]))
        except csv.Error as error:
            raise InvalidInputError(
                f"file row {self.row_number + 1}: not valid CSV ({error})"
            ) from None
        if self.header is None:
            self.header = cells
            self.rows.check_header(cells)
            return
        self.row_number += 1
        place = f"file row {self.row_number}"
        if len(cells) > len(self.header):
            raise InvalidInputError(
                f"{place}: {len(cells)} cells, the header names {len(self.header)} columns"
            )
        self.before_row(place)
        self.rows.table_row(dict(zip(self.header, cells, strict=False)), place)

    def finish(self) -> None:
        try:
            text = self._text + self.decoder.decode(b"", final=True)
        except UnicodeDecodeError as error:
            raise InvalidInputError(f"file: CSV is not UTF-8 ({error.reason})") from None
        self._text = ""
        if text:
            self.add_piece(text)
        if self._record:
            raise InvalidInputError(
                f"file row {self.row_number + 1}: a quoted cell is not closed by the file's end"
            )
        if self.header is None:
            raise InvalidInputError("file: no rows in the upload (a CSV starts with a header)")


class ParquetReader:
    """Parquet, read one row group at a time once the whole file is in (its index is at its
    end); at most `max_rows` rows, refused from the file's index before any row is read."""

    ROWS_PER_BATCH = 4096

    def __init__(self, rows: Rows, *, max_rows: int | None, unit: str) -> None:
        self.rows = rows
        self.max_rows = max_rows
        self.unit = unit
        # Closed by finish(), which reads it: not a with-block's lifetime.
        self.spool = tempfile.TemporaryFile()  # noqa: SIM115

    def feed(self, data: bytes) -> None:
        self.spool.write(data)

    def finish(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            self.spool.seek(0)
            try:
                table = pq.ParquetFile(self.spool)
            except (pa.ArrowException, OSError) as error:
                raise InvalidInputError(f"file: not a Parquet file ({error})") from None
            columns = table.schema_arrow.names
            self.rows.check_header(columns)
            total = table.metadata.num_rows
            if self.max_rows is not None and total > self.max_rows:
                raise InvalidInputError(
                    f"{self.unit}: at most {self.max_rows} per batch; the file has {total} rows"
                )
            wanted = self.rows.wanted_columns(columns)
            row_number = 0
            for group in range(table.num_row_groups):
                for values in table.read_row_group(group, columns=wanted).to_pylist():
                    row_number += 1
                    self.rows.table_row(json_ready(values), f"file row {row_number}")
        finally:
            self.spool.close()


def json_ready(value: Any) -> Any:
    """A Parquet value as JSON holds it: times and dates as ISO 8601 text, decimals as numbers,
    binary as UTF-8 text, at any depth."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_ready(item) for item in value]
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def row_reader(
    table: TableFormat,
    rows: Rows,
    *,
    before_row: Callable[[str], None] = lambda place: None,
    max_rows: int | None = None,
    unit: str = "rows",
) -> RowReader:
    """A reader of `table`'s rows into `rows`; `before_row` runs before each streamed row is
    parsed (a limit refused there stops the upload), `max_rows` bounds a Parquet file."""
    if table == "csv":
        return CsvReader(rows, before_row=before_row)
    if table == "parquet":
        return ParquetReader(rows, max_rows=max_rows, unit=unit)
    return JsonlReader(rows, before_row=before_row)
