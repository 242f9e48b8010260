"""Every answer of a batch, with its verdicts and first-error analyses, as a download: JSON Lines
or Parquet, read a page at a time by key (`id > last ORDER BY id`), each page in a short session
of its own, so that a download holds no connection between pages and its memory is one page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.kernel.pairs_export import DrainableSink
from app.schemas.sample import SampleOut
from app.services.samples import list_samples

PAGE_ROWS = 500
"""Answers per page: one short transaction, one Parquet row group."""


def sample_pages(
    session_factory: sessionmaker[Session],
    batch_id: str,
    *,
    verdict: str | None = None,
    agreement: str | None = None,
    page_rows: int = PAGE_ROWS,
) -> Iterator[list[SampleOut]]:
    """The batch's answers in id order (those `verdict` and `agreement` keep, as in
    samples.list_samples), a page at a time."""
    after: int | None = None
    while True:
        with session_factory() as session:
            page, has_more = list_samples(
                session,
                batch_id,
                limit=page_rows,
                after=after,
                verdict=verdict,
                agreement=agreement,
            )
        if page:
            yield page
        if not has_more:
            return
        after = page[-1].id


def samples_jsonl(pages: Iterator[list[SampleOut]]) -> Iterator[bytes]:
    """A JSON line per answer, as `GET /v1/batches/{id}/samples` lists it; a page per piece."""
    for page in pages:
        yield b"".join(sample.model_dump_json().encode() + b"\n" for sample in page)


def samples_parquet_schema() -> Any:
    """The Parquet columns: the answer's fields, each verdict a struct, gold and its agreement
    as JSON strings (their keys vary)."""
    import pyarrow as pa

    verdict = pa.struct(
        [
            ("kind", pa.string()),
            ("outcome", pa.string()),
            ("reason", pa.string()),
            ("verdict", pa.string()),
            ("extracted_answer", pa.string()),
            ("justification", pa.string()),
            ("correct_prefix", pa.string()),
            ("wrong_step", pa.string()),
            ("wrong_step_number", pa.int64()),
            ("correction", pa.string()),
            ("raw_output", pa.string()),
            ("attempts", pa.int64()),
            ("judge_model", pa.string()),
            ("prompt_version", pa.string()),
        ]
    )
    estimate = pa.struct(
        [
            ("prefix_steps", pa.int64()),
            ("rollouts", pa.int64()),
            ("successes", pa.int64()),
            ("unknown", pa.int64()),
            ("success_rate", pa.float64()),
        ]
    )
    return pa.schema(
        [
            ("id", pa.int64()),
            ("prompt_id", pa.int64()),
            ("custom_id", pa.string()),
            ("question", pa.string()),
            ("reference_answer", pa.string()),
            ("sample_index", pa.int64()),
            ("text", pa.string()),
            ("completion_tokens", pa.int64()),
            ("policy_model", pa.string()),
            ("policy_prompt_version", pa.string()),
            ("source", pa.string()),
            ("finish_reason", pa.string()),
            ("fap", verdict),
            ("scp", verdict),
            ("rollout", verdict),
            ("gold", pa.string()),
            ("agrees", pa.string()),
            ("prefix_estimates", pa.list_(estimate)),
            ("judge_rollout_agreement", pa.string()),
        ]
    )


def parquet_row(sample: SampleOut) -> dict[str, Any]:
    row = sample.model_dump(exclude={"object"})
    for name in ("gold", "agrees"):
        if row[name] is not None:
            row[name] = json.dumps(row[name], ensure_ascii=False)
    return row


def samples_parquet(pages: Iterator[list[SampleOut]]) -> Iterator[bytes]:
    """Parquet, a row group per page; each piece what was written since the last."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = samples_parquet_schema()
    sink = DrainableSink()
    out = pa.PythonFile(sink, mode="w")
    writer = pq.ParquetWriter(out, schema)
    try:
        for page in pages:
            writer.write_table(
                pa.Table.from_pylist([parquet_row(sample) for sample in page], schema=schema)
            )
            yield sink.drain()
    finally:
        # Closed even when the client went away.
        writer.close()
        out.close()
    yield sink.drain()
