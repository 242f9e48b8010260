"""Streaming a batch's preference pairs out of Postgres in constant memory."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.kernel.models import DatasetPair, PreferencePair, Prompt

ROWS_PER_FETCH = 1000


def pair_rows(
    session_factory: sessionmaker[Session],
    *,
    batch_id: str | None = None,
    dataset_id: str | None = None,
) -> Iterator[dict[str, Any]]:
    """A batch's pairs, or a dataset's, as TRL conversational rows plus kind and provenance."""
    query = (
        select(PreferencePair, Prompt.custom_id)
        .join(Prompt, Prompt.id == PreferencePair.prompt_id)
        .order_by(PreferencePair.id)
        .execution_options(yield_per=ROWS_PER_FETCH)
    )
    if batch_id is not None:
        query = query.where(PreferencePair.batch_id == batch_id)
    if dataset_id is not None:
        query = query.join(DatasetPair, DatasetPair.pair_id == PreferencePair.id).where(
            DatasetPair.dataset_id == dataset_id
        )
    with session_factory() as session:
        for pair, custom_id in session.execute(query):
            yield {
                "prompt": pair.prompt,
                "chosen": pair.chosen,
                "rejected": pair.rejected,
                "kind": pair.kind,
                "id": pair.id,
                "batch_id": pair.batch_id,
                "prompt_id": pair.prompt_id,
                "custom_id": custom_id,
                "chosen_sample_id": pair.chosen_sample_id,
                "rejected_sample_id": pair.rejected_sample_id,
                "token_count": pair.token_count,
                **pair.provenance,
            }


def openai_dpo_rows(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """OpenAI's preference fine-tuning JSONL: input messages, preferred and non-preferred output."""
    for row in rows:
        yield {
            "input": {"messages": row["prompt"]},
            "preferred_output": row["chosen"],
            "non_preferred_output": row["rejected"],
        }


def jsonl_chunks(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """JSON Lines, a few hundred rows per network write."""
    buffer: list[str] = []
    for row in rows:
        buffer.append(json.dumps(row, ensure_ascii=False))
        if len(buffer) >= 256:
            yield ("\n".join(buffer) + "\n").encode()
            buffer.clear()
    if buffer:
        yield ("\n".join(buffer) + "\n").encode()


def parquet_chunks(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """Parquet, one row group per ROWS_PER_FETCH rows; provenance kept as a JSON string."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    messages = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    schema = pa.schema(
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
    sink = DrainableSink()
    out = pa.PythonFile(sink, mode="w")
    writer = pq.ParquetWriter(out, schema)
    group: list[dict[str, Any]] = []

    def flush() -> bytes:
        writer.write_table(pa.Table.from_pylist(group, schema=schema))
        group.clear()
        return sink.drain()

    try:
        for row in rows:
            core = {key: row.pop(key) for key in ("prompt", "chosen", "rejected", "kind", "id")}
            core["batch_id"] = row.pop("batch_id")
            core["custom_id"] = row.pop("custom_id")
            core["provenance"] = json.dumps(row, ensure_ascii=False)
            group.append(core)
            if len(group) >= ROWS_PER_FETCH:
                yield flush()
        if group:
            yield flush()
    finally:
        # Closing both, even when the client went away, keeps Arrow's destructor quiet.
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
