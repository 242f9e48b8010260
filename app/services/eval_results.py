"""An evaluation's per-question results: keyset pages by question position, each read in a
short session; as a JSON page, or streamed as JSONL or Parquet."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session, sessionmaker

from app.kernel.errors import NotFoundError
from app.kernel.models import Prompt, Sample, Verdict
from app.kernel.models.statuses import SignalKind, VerdictOutcome
from app.kernel.pairs_export import DrainableSink
from app.schemas.evaluation import AnswerOut, EvaluationResult
from app.services.eval_report import DEFAULT_TASK

EXPORT_PAGE_QUESTIONS = 500


def question_id(prompt: Prompt) -> str:
    """A question's id: its own, or its position (0-based) when it came without one."""
    return prompt.custom_id if prompt.custom_id is not None else str(prompt.index)


def position_after(session: Session, batch_id: str, after: str | None) -> int:
    """The position of the question `after` names (its id): the page starts behind it."""
    if after is None:
        return -1
    found = session.scalar(
        select(Prompt.index).where(Prompt.batch_id == batch_id, Prompt.custom_id == after)
    )
    if found is None and after.isdigit():
        found = session.scalar(
            select(Prompt.index).where(
                Prompt.batch_id == batch_id, Prompt.index == int(after), Prompt.custom_id.is_(None)
            )
        )
    if found is None:
        raise NotFoundError(f"after: no question {after!r} in this evaluation")
    return found


def result_page(
    session: Session, batch_id: str, *, after_index: int, limit: int, samples: int
) -> tuple[list[EvaluationResult], bool, int]:
    """Up to `limit` questions after position `after_index`, with their answers and verdicts;
    whether more follow, and the position of the last."""
    prompts = list(
        session.scalars(
            select(Prompt)
            .where(Prompt.batch_id == batch_id, Prompt.index > after_index)
            .order_by(Prompt.index)
            .limit(limit + 1)
        )
    )
    has_more = len(prompts) > limit
    prompts = prompts[:limit]
    answers: dict[int, list[AnswerOut]] = {prompt.id: [] for prompt in prompts}
    rows = session.execute(
        select(Sample.prompt_id, Sample.text, Sample.finish_reason, Verdict)
        .outerjoin(Verdict, and_(Verdict.sample_id == Sample.id, Verdict.kind == SignalKind.FAP))
        .where(Sample.prompt_id.in_(list(answers)))
        .order_by(Sample.prompt_id, Sample.sample_index)
    )
    for prompt_id, answer_text, finish_reason, verdict in rows:
        answers[prompt_id].append(answer_out(answer_text, finish_reason, verdict))
    results = [result_of(prompt, answers[prompt.id], samples) for prompt in prompts]
    return results, has_more, prompts[-1].index if prompts else after_index


def answer_out(answer_text: str, finish_reason: str | None, verdict: Verdict | None) -> AnswerOut:
    shown = None
    if verdict is not None:
        if verdict.outcome == VerdictOutcome.TRUNCATED:
            shown = "truncated"
        elif verdict.outcome == VerdictOutcome.UNPARSEABLE or not (verdict.extracted_answer or ""):
            shown = "unparseable"
        else:
            shown = verdict.verdict
    return AnswerOut(
        answer=answer_text,
        extracted_answer=(verdict.extracted_answer or None) if verdict is not None else None,
        verdict=shown,
        finish_reason=finish_reason,
    )


def result_of(prompt: Prompt, answers: list[AnswerOut], samples: int) -> EvaluationResult:
    first = answers[0] if answers else None
    task = (prompt.prompt_metadata or {}).get("task")
    return EvaluationResult(
        id=question_id(prompt),
        task=task if isinstance(task, str) else DEFAULT_TASK,
        question=prompt.question,
        reference_answer=prompt.reference_answer or "",
        answer=None if first is None else first.answer,
        extracted_answer=None if first is None else first.extracted_answer,
        verdict=None if first is None else first.verdict,
        finish_reason=None if first is None else first.finish_reason,
        correct=sum(1 for answer in answers if answer.verdict == "correct"),
        samples=answers if samples > 1 else None,
    )


def result_pages(
    session_factory: sessionmaker[Session], batch_id: str, samples: int
) -> Iterator[list[EvaluationResult]]:
    """Every question's result, a page at a time, each page in a session of its own."""
    after_index = -1
    while True:
        with session_factory() as session:
            page, has_more, after_index = result_page(
                session,
                batch_id,
                after_index=after_index,
                limit=EXPORT_PAGE_QUESTIONS,
                samples=samples,
            )
        if page:
            yield page
        if not has_more:
            return


def jsonl_result_pages(
    session_factory: sessionmaker[Session], batch_id: str, samples: int
) -> Iterator[bytes]:
    for page in result_pages(session_factory, batch_id, samples):
        yield "".join(row.model_dump_json(exclude_none=False) + "\n" for row in page).encode()


PARQUET_COLUMNS = (
    "id",
    "task",
    "question",
    "reference_answer",
    "answer",
    "extracted_answer",
    "verdict",
    "finish_reason",
    "correct",
    "samples",
)


def parquet_result_pages(
    session_factory: sessionmaker[Session], batch_id: str, samples: int
) -> Iterator[bytes]:
    """Parquet, one row group per page; `samples` (k > 1) as a JSON string column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [(name, pa.int64() if name == "correct" else pa.string()) for name in PARQUET_COLUMNS]
    )
    sink = DrainableSink()
    out = pa.PythonFile(sink, mode="w")
    writer = pq.ParquetWriter(out, schema)
    try:
        for page in result_pages(session_factory, batch_id, samples):
            writer.write_table(pa.Table.from_pylist([parquet_row(row) for row in page], schema))
            yield sink.drain()
    finally:
        writer.close()
        out.close()
    yield sink.drain()


def parquet_row(row: EvaluationResult) -> dict[str, Any]:
    data = row.model_dump(mode="json")
    samples = data.pop("samples")
    return {**data, "samples": None if samples is None else json.dumps(samples)}
