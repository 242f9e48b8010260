"""Streaming a batch's or a dataset's preference pairs out of Postgres.

Postgres writes each pair's JSON line itself (its jsonb text is the JSON the download carries,
keys and spacing as `json.dumps` writes them), and the lines are read a page at a time by key
(`id > last ORDER BY id LIMIT n`), each page in a short transaction of its own: between pages,
and while a client is slow to read, a download holds no database connection, and its memory is
a few pages whatever the number of pairs. A page is a binary COPY of its lines, read as the
bytes Postgres sends (app.kernel.db.copy_out). Where the next pages end is read first, so that
several pages are written by Postgres at once, on connections of their own."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from psycopg import sql
from sqlalchemy import TextClause, text
from sqlalchemy.orm import Session, sessionmaker

from app.kernel.db.line_pages import PAGE_READERS, Page, bounds_sql, keyed_line_pages

PAGE_ROWS = 1000
"""Pairs per page: one query, one Parquet row group."""


class LineFormat(StrEnum):
    """The JSON of one pair, as a download writes it."""

    TRL = "trl"
    """TRL's conversational preference row plus kind and provenance."""
    OPENAI = "openai"
    """OpenAI's preference fine-tuning row."""
    ARROW = "arrow"
    """The Parquet columns; provenance as a JSON string."""


# SQL over `pair` (preference_pairs) and `prompt` (prompts). A JSON value's text (`::text` of a
# jsonb, to_json() of a string) is spelled like json.dumps(..., ensure_ascii=False) spells it.
# The messages (most of a line's bytes) go into concat() whole, after the small members are
# joined by ||: a chain of || would copy the line so far once per member.
_MESSAGES = """'{"prompt": ', pair.prompt::text,
    ', "chosen": ', pair.chosen::text,
    ', "rejected": ', pair.rejected::text"""
# The sample ids and token count, then the provenance's own members and the closing brace: the
# provenance's text without its opening brace ends the object (an empty one adds no member).
# right(text, -1) cuts one character off the front without counting the rest.
_SAMPLES_AND_PROVENANCE = """'"chosen_sample_id": ' || coalesce(pair.chosen_sample_id::text, 'null')
    || ', "rejected_sample_id": ' || pair.rejected_sample_id
    || ', "token_count": ' || coalesce(pair.token_count::text, 'null')
    || CASE WHEN pair.provenance = '{}' THEN '}'
        ELSE ', ' || right(pair.provenance::text, -1) END"""
_CUSTOM_ID = "coalesce(to_json(prompt.custom_id)::text, 'null')"

LINE_SQL: dict[LineFormat, str] = {
    LineFormat.TRL: f"""concat({_MESSAGES},
    ', "kind": ' || to_json(pair.kind)::text
    || ', "id": ' || pair.id
    || ', "batch_id": ' || to_json(pair.batch_id)::text
    || ', "prompt_id": ' || pair.prompt_id
    || ', "custom_id": ' || {_CUSTOM_ID}
    || ', ' || {_SAMPLES_AND_PROVENANCE})""",
    LineFormat.OPENAI: """concat('{"input": {"messages": ', pair.prompt::text,
    '}, "preferred_output": ', pair.chosen::text,
    ', "non_preferred_output": ', pair.rejected::text, '}')""",
    LineFormat.ARROW: f"""concat({_MESSAGES},
    ', "kind": ' || to_json(pair.kind)::text
    || ', "id": ' || pair.id
    || ', "batch_id": ' || to_json(pair.batch_id)::text
    || ', "custom_id": ' || {_CUSTOM_ID}
    || ', "provenance": ' || to_json(
        '{{"prompt_id": ' || pair.prompt_id || ', ' || {_SAMPLES_AND_PROVENANCE}
    )::text || '}}')""",
}
"""Each format's line: one text value per pair, written by Postgres."""


@dataclass(frozen=True)
class PairSource:
    """Whose pairs: a batch's, or a dataset's; and the SQL that reads a page of them."""

    batch_id: str | None = None
    dataset_id: str | None = None
    kind: str | None = None
    """Only pairs of this kind (fap, scp); None: every kind."""

    def __post_init__(self) -> None:
        if (self.batch_id is None) == (self.dataset_id is None):
            raise ValueError("PairSource: name exactly one of batch_id and dataset_id")

    def kind_filter(self) -> sql.Composable:
        """The condition on the pairs' kind, after the owner's id; nothing for every kind."""
        if self.kind is None:
            return sql.SQL("")
        return sql.SQL(" AND pair.kind = ") + sql.Literal(self.kind)

    def _scope(self) -> tuple[str, str]:
        """The page key and the FROM ... WHERE of this source's pairs, up to the owner's id,
        which follows the `=` it ends in."""
        if self.dataset_id is not None:
            # Keyed on the membership table's primary key (dataset_id, pair_id).
            return (
                "member.pair_id",
                """dataset_pairs AS member
                JOIN preference_pairs AS pair ON pair.id = member.pair_id
                JOIN prompts AS prompt ON prompt.id = pair.prompt_id
                WHERE member.dataset_id = """,
            )
        # ix_preference_pairs_batch_id_id; a batch's pairs are its live ones (a review withdrew
        # the others; the datasets frozen before keep them).
        return (
            "pair.id",
            """preference_pairs AS pair
            JOIN prompts AS prompt ON prompt.id = pair.prompt_id
            WHERE pair.withdrawn_at IS NULL AND pair.batch_id = """,
        )

    def bounds_statement(self) -> TextClause:
        """Where the next pages end: of the next :rows pairs after :after, in key order, the
        key and position of every :page_rows-th and of the last (an index scan of keys only;
        it cuts the next pages out before they are read, and no key in between comes here)."""
        key, scope = self._scope()
        kind = "" if self.kind is None else " AND pair.kind = :kind"
        return text(bounds_sql(key, f"{scope}:owner{kind}"))

    def page_statement(self, line_format: LineFormat, *, after: int, rows: int) -> sql.Composed:
        """One page as a COPY of its lines: the first `rows` pairs with a key past `after`.
        (COPY takes no parameters: the values are written into the statement. Bounded by a
        LIMIT, not by a last key: given the range, the planner would hash the whole prompts
        table for each page.)"""
        key, scope = self._scope()
        return sql.Composed(
            [
                sql.SQL(f"COPY (SELECT {LINE_SQL[line_format]} FROM {scope}"),
                sql.Literal(self.owner),
                self.kind_filter(),
                sql.SQL(f" AND {key} > {int(after)} ORDER BY {key} LIMIT {int(rows)})"),
                sql.SQL(" TO STDOUT (FORMAT binary)"),
            ]
        )

    @property
    def owner(self) -> str:
        return self.dataset_id or self.batch_id or ""


def line_pages(
    session_factory: sessionmaker[Session],
    source: PairSource,
    line_format: LineFormat,
    *,
    page_rows: int = PAGE_ROWS,
    readers: int = PAGE_READERS,
) -> Iterator[Page]:
    """The pairs' JSON lines (UTF-8) in key order, a page at a time, each page ending in a
    newline (read as app.kernel.db.line_pages reads lines: several pages at once)."""
    return keyed_line_pages(
        session_factory,
        bounds_statement=source.bounds_statement(),
        bounds_parameters={"owner": source.owner, "kind": source.kind},
        page_statement=lambda after, rows: source.page_statement(
            line_format, after=after, rows=rows
        ),
        page_rows=page_rows,
        readers=readers,
    )


def jsonl_pages(
    session_factory: sessionmaker[Session],
    source: PairSource,
    line_format: LineFormat = LineFormat.TRL,
) -> Iterator[Page]:
    """JSON Lines (TRL or OpenAI), a page of pairs per piece."""
    yield from line_pages(session_factory, source, line_format)


def pair_rows(
    session_factory: sessionmaker[Session],
    *,
    batch_id: str | None = None,
    dataset_id: str | None = None,
) -> Iterator[dict[str, Any]]:
    """A batch's pairs, or a dataset's, as TRL conversational rows plus kind and provenance."""
    source = PairSource(batch_id=batch_id, dataset_id=dataset_id)
    for page in line_pages(session_factory, source, LineFormat.TRL):
        # Split at newline bytes only (a JSON line holds none of its own).
        for line in page[:-1].split(b"\n"):
            yield json.loads(line)


def parquet_schema() -> Any:
    """The columns of a Parquet download; provenance is kept as a JSON string."""
    import pyarrow as pa

    messages = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    return pa.schema(
        [
            ("prompt", messages),
            ("chosen", messages),
            ("rejected", messages),
            ("kind", pa.string()),
            ("id", pa.int64()),
            ("batch_id", pa.string()),
            ("custom_id", pa.string()),
            ("provenance", pa.string()),
        ]
    )


def parquet_pages(session_factory: sessionmaker[Session], source: PairSource) -> Iterator[bytes]:
    """Parquet, one row group per page: Arrow parses each page of JSON lines into columns, so
    memory stays that of one page."""
    import pyarrow as pa
    import pyarrow.json as pa_json
    import pyarrow.parquet as pq

    schema = parquet_schema()
    parse_options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    sink = DrainableSink()
    out = pa.PythonFile(sink, mode="w")
    writer = pq.ParquetWriter(out, schema)
    try:
        for data in line_pages(session_factory, source, LineFormat.ARROW):
            table = pa_json.read_json(
                io.BytesIO(data),
                # One block per page: a block must hold whole lines, and a pair may be long.
                read_options=pa_json.ReadOptions(use_threads=False, block_size=len(data) + 1),
                parse_options=parse_options,
            )
            writer.write_table(table)
            yield sink.drain()
    finally:
        # Closed even when the client went away: Arrow's destructor stays quiet.
        writer.close()
        out.close()
    yield sink.drain()


class DrainableSink(io.RawIOBase):
    """A write-only file that hands over what was written so far, keeping its position."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def drain(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data
